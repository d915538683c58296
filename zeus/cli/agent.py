"""`zeus agent`: run the node agent, the one process on a node that changes GPU power limits."""

from __future__ import annotations

import logging
from typing import Any

import typer


def agent(
    gpu: str = typer.Option(
        None,
        help="Devices the agent owns: 'nvml' or 'replay:<profile>[:<n>]' (env ZEUS_AGENT_GPU; nvml).",
    ),
    socket: str = typer.Option(
        None, help="UNIX socket to serve (env ZEUS_AGENT_SOCKET; /run/zeus/agent.sock)."
    ),
    socket_mode: str = typer.Option(
        None, help="Socket permission bits, octal (env ZEUS_AGENT_SOCKET_MODE; 0660)."
    ),
    socket_group: str = typer.Option(
        None, help="Group owning the socket: who may connect (env ZEUS_AGENT_SOCKET_GROUP)."
    ),
    allow_uid: list[int] = typer.Option(
        None,
        help="A user that may lease GPUs; repeat for more (env ZEUS_AGENT_ALLOW_UIDS=1000,1001).",
    ),
    allow_group: list[str] = typer.Option(
        None, help="A group whose members may lease GPUs; repeat (env ZEUS_AGENT_ALLOW_GROUPS)."
    ),
    state_dir: str = typer.Option(
        None, help="Lease journal and audit log (env ZEUS_AGENT_STATE_DIR; /var/lib/zeus-agent)."
    ),
    tcp_host: str = typer.Option(None, help="Interface for TCP reads (env ZEUS_AGENT_TCP_HOST)."),
    tcp_port: int = typer.Option(
        None, help="Also serve reads on TCP; needs --token (env ZEUS_AGENT_TCP_PORT)."
    ),
    token: str = typer.Option(None, help="Bearer token of TCP clients (env ZEUS_AGENT_TOKEN)."),
    metrics_port: int = typer.Option(
        None,
        help="Serve Prometheus metrics on this TCP port: GET /metrics only, no token "
        "(env ZEUS_AGENT_METRICS_PORT; off).",
    ),
    metrics_host: str = typer.Option(
        None, help="Interface of the metrics listener (env ZEUS_AGENT_METRICS_HOST; 127.0.0.1)."
    ),
    metrics_interval_s: float = typer.Option(
        None, help="Seconds between metrics samples (env ZEUS_AGENT_METRICS_INTERVAL_S; 1)."
    ),
    log_level: str = typer.Option(
        None, help="critical, error, warning, info or debug (env ZEUS_AGENT_LOG_LEVEL; info)."
    ),
    check: bool = typer.Option(
        False, "--check", help="Ask the agent on --socket whether it answers, then exit (probes)."
    ),
) -> None:
    """Run the node agent: leases GPUs to local jobs, restores limits however a job ends."""
    from zeus.agent.settings import AgentSettings
    from zeus.cli.console import make_console

    settings = AgentSettings.from_env(
        gpu=gpu,
        socket=socket,
        socket_mode=socket_mode,
        socket_group=socket_group,
        allow_uids=tuple(allow_uid or ()),
        allow_groups=tuple(allow_group or ()),
        state_dir=state_dir,
        tcp_host=tcp_host,
        tcp_port=tcp_port,
        token=token,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        metrics_interval_s=metrics_interval_s,
        log_level=log_level,
    )
    console = make_console(stderr=True)
    if check:
        _check(settings.socket, console)
        return
    from zeus.agent.app import create_app
    from zeus.agent.leases import LeaseBook
    from zeus.agent.serve import serve

    logging.getLogger().setLevel(settings.log_level.upper())
    app = create_app(settings)
    book: LeaseBook = app.state.book
    console.print(
        f"zeus agent: {len(book.devices.gpus)} GPU(s) from {settings.gpu!r}, "
        f"{len(book.leases)} lease(s) carried over; socket {settings.socket}, "
        f"audit log {settings.audit_path}"
        + (
            f"; metrics on {settings.metrics_host}:{settings.metrics_port} every "
            f"{settings.metrics_interval_s:g} s"
            if settings.metrics_port
            else ""
        ),
        markup=False,
    )
    for device in book.devices.gpus:
        if not device.capabilities.set_power_limit:
            console.print(
                f"[bold yellow]warning:[/] the agent may not change {book.devices.describe(device)}'s "
                "power limit: run it as root or with CAP_SYS_ADMIN (jobs will only observe)"
            )
    if not (settings.allow_uids or settings.allow_groups):
        console.print(
            "no --allow-uid/--allow-group: whoever can open the socket may lease GPUs "
            f"(socket mode {settings.socket_mode}, group {settings.socket_group or 'the agent’s'})",
            markup=False,
        )
    serve(settings, app)


def _check(socket_path: str, console: Any) -> None:
    """One line about the agent on ``socket_path``; `ZeusError` (exit 2) when it does not answer."""
    from zeus.device.agent_client import AgentClient

    client = AgentClient(socket_path, retry_s=0)
    try:
        health = client.call("GET", "/health")
    finally:
        client.close()
    console.print(
        f"agent at {socket_path}: {health['gpus']} GPU(s) from {health['backend']!r}, "
        f"{health['leases']} lease(s)",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("agent")(agent)
