"""Thin adapters that drive Zeus's training-loop callbacks from other frameworks.

Each adapter lives in its own module that imports its framework; nothing here imports one until an
adapter is used:

- `zeus.integrations.huggingface.HFGlobalPowerLimitOptimizer`: a Hugging Face ``TrainerCallback``.
- `zeus.integrations.lightning.LightningGlobalPowerLimitOptimizer`: a Lightning ``Callback``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zeus.integrations.huggingface import HFGlobalPowerLimitOptimizer
    from zeus.integrations.lightning import LightningGlobalPowerLimitOptimizer

__all__ = ["HFGlobalPowerLimitOptimizer", "LightningGlobalPowerLimitOptimizer"]


def __getattr__(name: str) -> Any:
    if name == "HFGlobalPowerLimitOptimizer":
        from zeus.integrations.huggingface import HFGlobalPowerLimitOptimizer

        return HFGlobalPowerLimitOptimizer
    if name == "LightningGlobalPowerLimitOptimizer":
        from zeus.integrations.lightning import LightningGlobalPowerLimitOptimizer

        return LightningGlobalPowerLimitOptimizer
    raise AttributeError(f"module 'zeus.integrations' has no attribute {name!r}")
