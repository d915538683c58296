"""PyTorch Lightning adapter for the power-limit optimizer.

    from zeus.monitor import ZeusMonitor
    from zeus.integrations.lightning import LightningGlobalPowerLimitOptimizer

    callback = LightningGlobalPowerLimitOptimizer(monitor=ZeusMonitor())
    trainer = lightning.Trainer(max_epochs=3, callbacks=[callback])
    trainer.fit(module, train_loader)
    callback.optimizer.chosen_power_limit_w

Importing this module imports ``lightning``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zeus.integrations._engine import engine_from, missing_framework

try:
    from lightning.pytorch import Callback
except ImportError as e:  # pragma: no cover - depends on the environment
    raise missing_framework("lightning", "lightning") from e

if TYPE_CHECKING:
    from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer


class LightningGlobalPowerLimitOptimizer(Callback):  # type: ignore[misc]  # lightning may be untyped
    """Forwards Lightning's training epoch and batch events to a `GlobalPowerLimitOptimizer`.

    Pass an ``optimizer`` you built, or the optimizer's keyword arguments (``monitor=...`` etc.).
    Validation inside an epoch is not a training step and is left out of the measurements. On an
    exception the engine restores the original power limits. Unless the optimizer was given a
    ``batch_size``, it takes the train dataloader's (times the world size).
    """

    def __init__(self, optimizer: GlobalPowerLimitOptimizer | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.optimizer = engine_from(optimizer, kwargs)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        per_device = getattr(trainer.train_dataloader, "batch_size", None)
        if self.optimizer.batch_size is None and per_device:  # a Lightning step is one batch
            self.optimizer.batch_size = int(per_device * trainer.world_size)
        self.optimizer.on_train_begin()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.optimizer.on_epoch_begin()

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        self.optimizer.on_step_begin()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.optimizer.on_step_end()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.optimizer.on_epoch_end()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.optimizer.on_train_end()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.optimizer.on_train_end()

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)
