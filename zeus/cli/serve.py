"""`zeus serve`: run the batch size optimizer server (uvicorn), migrating its database first."""

from __future__ import annotations

import logging
import os
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
        None, help="Bearer token required on every endpoint but /health (env ZEUS_BSO_TOKEN)."
    ),
    workers: int = typer.Option(1, min=1, max=64, help="Server processes sharing the database."),
    lease_seconds: float = typer.Option(
        None, help="Fail a trial with no report for this long (env ZEUS_BSO_LEASE_SECONDS; 86400)."
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
        lease_seconds=lease_seconds,
        log_level=log_level,
        access_log=access_log,
    )
    if not migrate_only:
        _check_port_free(settings.host, settings.port)
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
            "no --token: listening on loopback only (use --host and --token to expose it)"
        )
    # Workers are separate processes: hand them the settings through the environment.
    for name, value in settings.model_dump(exclude={"migrate"}).items():
        if value is not None:
            os.environ[ENV_PREFIX + name.upper()] = str(value)
    os.environ[ENV_PREFIX + "MIGRATE"] = "false"  # done above, once, not by N workers at once
    _run_uvicorn(settings.host, settings.port, workers, settings.log_level, settings.access_log)


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

    engine = create_db_engine(database_url)
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


def _run_uvicorn(host: str, port: int, workers: int, log_level: str, access_log: bool) -> None:
    import importlib.util

    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("serve")(serve)
