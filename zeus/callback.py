"""The training-loop callback base shared by every optimizer and framework adapter.

Every hook does nothing by default, so a subclass overrides only what it needs. State that must
survive a checkpoint goes through ``state_dict()``/``load_state_dict()``.
"""

from __future__ import annotations

from typing import Any


class Callback:
    """Hooks called by a training loop (directly, or through `zeus.integrations` adapters)."""

    def on_train_begin(self) -> None:
        """Before the first epoch."""

    def on_train_end(self) -> None:
        """After the last epoch, also when training stops early."""

    def on_epoch_begin(self) -> None:
        """At the start of every epoch."""

    def on_epoch_end(self) -> None:
        """At the end of every epoch."""

    def on_step_begin(self) -> None:
        """Before every training step (one batch)."""

    def on_step_end(self) -> None:
        """After every training step."""

    def on_evaluate(self, metric: float) -> None:
        """After validation, with the validation metric."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state to checkpoint; empty by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict()`` returned."""
