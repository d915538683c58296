"""The batch size optimizer server: ``create_app(settings)``; run it with ``zeus serve``."""

from zeus.server.app import create_app
from zeus.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
