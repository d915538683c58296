"""Serve the agent with uvicorn on its UNIX socket (and, with a token, on TCP).

The agent binds the sockets itself: the UNIX socket gets its mode and group before anyone can
connect, and a stale socket file left by a killed agent is replaced (a live agent's is not). Each
connection's peer credentials are read once, when it is accepted, and handed to the app in the ASGI
scope (``extensions["zeus.peer"]``); TCP connections carry none.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from zeus.agent.peer import Peer
from zeus.agent.routes import PEER_KEY
from zeus.agent.settings import AgentSettings, group_id
from zeus.errors import ZeusConfigError

logger = logging.getLogger(__name__)


def with_peer(app: ASGIApp, peer: Peer) -> ASGIApp:
    """``app`` with ``peer`` in the scope of every request (one connection's requests)."""

    async def app_with_peer(scope: Scope, receive: Receive, send: Send) -> None:
        scope["extensions"] = {**(scope.get("extensions") or {}), PEER_KEY: peer}
        await app(scope, receive, send)

    return app_with_peer


class PeerHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol, one instance per connection, that reads the peer's credentials."""

    app: ASGIApp

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            self.app = with_peer(self.app, Peer.of_socket(sock))


def bind_unix(path: Path, mode: int, group: str | None) -> socket.socket:
    """A listening UNIX socket at ``path`` with ``mode`` and ``group``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ZeusConfigError(f"agent setting socket: {path} exists and is not a socket")
        if _answers(path):
            raise ZeusConfigError(f"agent setting socket: another agent is listening on {path}")
        path.unlink()  # left behind by an agent that was killed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, mode)
        if group is not None:
            os.chown(path, -1, group_id(group))
        sock.listen(128)  # from now on clients wait in the backlog, not refused, while we start
    except OSError as e:
        sock.close()
        raise ZeusConfigError(f"agent setting socket: cannot serve on {path}: {e}") from e
    return sock


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def bind_tcp(host: str, port: int, setting: str = "tcp_port") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ZeusConfigError(
            f"agent setting {setting}: cannot listen on {host}:{port}: {e}"
        ) from e
    return sock


def make_server(
    settings: AgentSettings, app: ASGIApp
) -> tuple[uvicorn.Server, list[socket.socket]]:
    """A uvicorn server for ``app`` and the sockets it is to serve (bound, with their mode)."""
    sockets = [bind_unix(Path(settings.socket), settings.socket_mode_bits, settings.socket_group)]
    tcp = [(settings.tcp_host, settings.tcp_port, "tcp_port")]
    tcp.append((settings.metrics_host, settings.metrics_port, "metrics_port"))
    for host, port, setting in tcp:
        if port is None:
            continue
        try:
            sockets.append(bind_tcp(host, port, setting))
        except ZeusConfigError:
            for sock in sockets:
                sock.close()
            raise
    config = uvicorn.Config(
        app,
        http=PeerHTTPProtocol,
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        timeout_keep_alive=300,  # jobs keep one connection; a step may come minutes after the last
        loop="uvloop" if _has("uvloop") else "asyncio",
    )
    return uvicorn.Server(config), sockets


def serve(settings: AgentSettings, app: ASGIApp) -> None:
    """Run ``app`` until SIGTERM/SIGINT; the socket file is removed on the way out."""
    server, sockets = make_server(settings, app)
    logger.info(
        "agent serving %s%s%s",
        settings.socket,
        f" and TCP {settings.tcp_host}:{settings.tcp_port} (read-only)"
        if settings.tcp_port
        else "",
        f"; metrics on {settings.metrics_host}:{settings.metrics_port}"
        if settings.metrics_port
        else "",
    )
    try:
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
        Path(settings.socket).unlink(missing_ok=True)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
