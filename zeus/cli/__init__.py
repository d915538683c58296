"""The one `zeus` command. Each subcommand group lives in its own module with a ``register(app)``.

The CLI owns the terminal (rich tables, progress bars); the library only logs. Heavy imports (torch,
FastAPI, matplotlib) happen inside the commands, so ``zeus --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="zeus",
    help="Cut the energy of recurring GPU training jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Module names under zeus.cli, in the order their commands appear in --help.
_GROUPS = [
    "demo",
    "env",
    "monitor",
    "analyze",
    "simulate",
    "serve",
    "bso",
    "agent",
    "master",
    "profile",
]


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for _name in _GROUPS:
    importlib.import_module(f"zeus.cli.{_name}").register(app)


def main() -> None:
    """Entry point: turns Zeus's deliberate errors into one clear line and exit code 2."""
    from zeus.errors import ZeusError

    try:
        app()
    except ZeusError as e:
        from zeus.cli.console import make_console

        make_console(stderr=True).print(f"[bold red]error:[/] {e}")
        raise SystemExit(2) from None
