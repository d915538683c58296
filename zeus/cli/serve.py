"""`zeus serve`: run the batch size optimizer server (uvicorn), migrating its database first."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import typer

from zeus.errors import ZeusConfigError

APP_FACTORY = "zeus.server.app:create_app_from_env"


def serve(
    host: str = typer.Option(
        None, help="Interface to bind (env ZEUS_BSO_HOST; default 127.0.0.1, loopback only)."
    ),
    port: int = typer.Option(None, help="TCP port (env ZEUS_BSO_PORT; default 8000)."),
    database_url: str = typer.Option(
        None,
        help="SQLAlchemy URL (env ZEUS_BSO_DATABASE_URL; default sqlite:///./zeus_bso.db); "
        "postgresql://... and mysql://... work too.",
    ),
    token: str = typer.Option(
        None,
        help="Bearer token required on every endpoint but /health (env ZEUS_BSO_TOKEN). Visible "
        "to every user in the process list: prefer the variable or --token-file.",
    ),
    token_file: Path = typer.Option(
        None, help="File holding the bearer token (env ZEUS_BSO_TOKEN_FILE)."
    ),
    allowed_hosts: str = typer.Option(
        None,
        help="Comma-separated Host header names served, * for any (env ZEUS_BSO_ALLOWED_HOSTS; "
        "default: the bound address and localhost).",
    ),
    workers: int = typer.Option(1, min=1, max=64, help="Server processes sharing the database."),
    lease_seconds: float = typer.Option(
        None,
        help="Longest lease: a trial with no report for this long fails, whatever its job's "
        "epochs (env ZEUS_BSO_LEASE_SECONDS; 86400).",
    ),
    log_level: str = typer.Option(
        None, help="critical, error, warning, info or debug (env ZEUS_BSO_LOG_LEVEL; info)."
    ),
    access_log: bool = typer.Option(
        None,
        "--access-log/--no-access-log",
        help="Log every request (env ZEUS_BSO_ACCESS_LOG; off).",
    ),
    migrate_only: bool = typer.Option(
        False, "--migrate-only", help="Create or migrate the database schema, then exit."
    ),
) -> None:
    """Run the batch size optimizer server (creates/migrates its database first)."""
    from zeus.extras import require

    require("server", "zeus serve")
    from zeus.cli.console import make_console
    from zeus.server.settings import ENV_PREFIX, ServerSettings

    console = make_console(stderr=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = ServerSettings.from_env(
        host=host,
        port=port,
        database_url=database_url,
        token=token,
        token_file=token_file,
        allowed_hosts=allowed_hosts,
        lease_seconds=lease_seconds,
        log_level=log_level,
        access_log=access_log,
    )
    if not migrate_only:
        _check_port_free(settings.host, settings.port)
    if token is not None:
        console.print(
            "[bold yellow]warning:[/] --token shows in the process list to every user of this "
            "machine; use ZEUS_BSO_TOKEN or --token-file"
        )
    if settings.migrate or migrate_only:
        _migrate(settings.database_url, console)
    else:
        console.print("ZEUS_BSO_MIGRATE=false: leaving the database schema as it is")
    if migrate_only:
        return
    if settings.token is None and not settings.binds_loopback:
        console.print(
            f"[bold yellow]warning:[/] no --token and bound to {settings.host}: anyone who can "
            "reach this port can register, change and delete jobs"
        )
    elif settings.token is None:
        console.print(
            "no token: listening on loopback only (use --host and --token-file to expose it)"
        )
    hosts = settings.served_hosts()
    shown = "any" if hosts is None else ", ".join(sorted(hosts))
    console.print(f"serving Host names: {shown}", markup=False)
    # Workers are separate processes: hand them the settings through the environment.
    os.environ.pop(ENV_PREFIX + "TOKEN_FILE", None)  # read once, here: the token itself goes
    os.environ.update(settings.to_env())
    os.environ[ENV_PREFIX + "MIGRATE"] = "false"  # done above, once, not by N workers at once
    _run_uvicorn(settings, workers)


def _check_port_free(host: str, port: int) -> None:
    """One clear line instead of uvicorn's [Errno 98] traceback when the port is taken."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(infos[0][4])
    except OSError as e:
        raise ZeusConfigError(
            f"port: cannot listen on {host}:{port} ({e.strerror or e}); "
            "pick another with --port or ZEUS_BSO_PORT"
        ) from None


def _migrate(database_url: str, console: Any) -> None:
    from zeus.server.db import create_db_engine, migrate

    engine = create_db_engine(database_url, timeout_s=60.0)  # waits for other replicas' migration
    try:
        revision = migrate(engine)
    except Exception as e:  # unreachable database, bad credentials: one line, not a traceback
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0][:200]
        raise ZeusConfigError(
            f"database_url: cannot migrate the database ({type(e).__name__}: {reason})"
        ) from e
    finally:
        engine.dispose()
    safe_url = engine.url.render_as_string(hide_password=True)
    console.print(f"database {safe_url} at schema revision {revision}", markup=False)


def _run_uvicorn(settings: Any, workers: int) -> None:
    import importlib.util

    import uvicorn

    from zeus.server.protocol import protocol_factory

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        access_log=settings.access_log,
        http=protocol_factory(settings),  # httptools with header size and time limits
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("serve")(serve)
