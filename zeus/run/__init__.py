"""Running training jobs: the all-in-one `ZeusDataLoader` and the recurring-job driver `ZeusMaster`.

Imported lazily so that ``import zeus.run`` does not pull in torch until a loader is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zeus.run.dataloader import ZeusDataLoader
    from zeus.run.master import ZeusMaster

__all__ = ["ZeusDataLoader", "ZeusMaster"]


def __getattr__(name: str) -> Any:
    if name == "ZeusDataLoader":
        from zeus.run.dataloader import ZeusDataLoader

        return ZeusDataLoader
    if name == "ZeusMaster":
        from zeus.run.master import ZeusMaster

        return ZeusMaster
    raise AttributeError(f"module 'zeus.run' has no attribute {name!r}")
