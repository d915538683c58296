"""The batch size optimizer server: ``create_app(settings)``; run it with ``zeus serve``.

The names below load on first use: a server worker process unpickles ``zeus.server.protocol`` before
it answers its supervisor's health checks, so importing this package must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zeus.server.app import create_app
    from zeus.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from zeus.server.app import create_app

        return create_app
    if name == "ServerSettings":
        from zeus.server.settings import ServerSettings

        return ServerSettings
    raise AttributeError(f"module 'zeus.server' has no attribute {name!r}")
