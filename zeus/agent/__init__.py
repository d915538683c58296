"""The node agent (`zeus agent`): the one process on a node that changes GPU power limits.

Training processes reach it through the ``agent`` device backend (`zeus.device.agent`) and need no
privileges. Modules: `settings`, `peer` (who calls, who lives), `access` (the allow-list), `devices`,
`leases` (with `journal`, `audit`, `restore`), `schemas` (the wire format), `routes`, `app`
(`create_app`), `serve` (uvicorn on the UNIX socket). Importing this package imports no server stack:
the backend needs only `schemas`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zeus.agent.app import create_app
    from zeus.agent.settings import AgentSettings

__all__ = ["AgentSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from zeus.agent.app import create_app

        return create_app
    if name == "AgentSettings":
        from zeus.agent.settings import AgentSettings

        return AgentSettings
    raise AttributeError(name)
