"""`zeus bso`: operate a running batch size optimizer server over HTTP (its admin endpoints)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from zeus.errors import ZeusConfigError

DEFAULT_URL = "http://127.0.0.1:8000"

bso_app = typer.Typer(help="Operate a running batch size optimizer server.", no_args_is_help=True)


def _token(token_file: Path | None) -> str | None:
    if token_file is None:
        return os.environ.get("ZEUS_BSO_TOKEN") or None
    try:
        token = token_file.read_text().strip()
    except OSError as e:
        raise ZeusConfigError(f"--token-file {token_file}: {e.strerror}") from None
    if not token:
        raise ZeusConfigError(f"--token-file {token_file} is empty")
    return token


@bso_app.command("reset")
def reset(
    job_id: str = typer.Argument(..., help="The job whose learned costs to forget."),
    server_url: str = typer.Option(
        None, help=f"The server (env ZEUS_BSO_SERVER_URL; default {DEFAULT_URL})."
    ),
    token_file: Path = typer.Option(
        None, help="File holding the server's token (default: env ZEUS_BSO_TOKEN)."
    ),
) -> None:
    """Forget what a job learned: per-batch-size costs, minimum cost, pruning progress.

    For a job that a bad report (a broken energy meter, a unit error) left stopping every trial
    at its first epoch. The job keeps its id, spec and trial history and starts pruning again.
    """
    from zeus.cli.console import make_console
    from zeus.optimizer.batch_size._client_http import BSOHttp

    url = server_url or os.environ.get("ZEUS_BSO_SERVER_URL") or DEFAULT_URL
    http = BSOHttp(url, token=_token(token_file), max_retries=2)
    try:
        job = http.request("POST", "/admin/jobs/reset", params={"job_id": job_id})
    finally:
        http.close()
    make_console().print(
        f"job {job['job_id']} reset: stage {job['stage']}, no minimum cost; its "
        f"{job['num_trials']} trials stay as history",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(bso_app, name="bso")
