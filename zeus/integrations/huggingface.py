"""Hugging Face ``Trainer`` adapter for the power-limit optimizer.

    from zeus.monitor import ZeusMonitor
    from zeus.integrations.huggingface import HFGlobalPowerLimitOptimizer

    callback = HFGlobalPowerLimitOptimizer(monitor=ZeusMonitor())   # kwargs of GlobalPowerLimitOptimizer
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[callback])
    trainer.train()
    callback.optimizer.chosen_power_limit_w

Importing this module imports ``transformers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zeus.integrations._engine import engine_from, missing_framework

try:
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - depends on the environment
    raise missing_framework("transformers", "hf") from e

if TYPE_CHECKING:
    from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer


class HFGlobalPowerLimitOptimizer(TrainerCallback):  # type: ignore[misc]  # transformers is untyped
    """Forwards the ``Trainer``'s epoch and step events to a `GlobalPowerLimitOptimizer`.

    Pass an ``optimizer`` you built, or the optimizer's keyword arguments (``monitor=...`` etc.).
    Unless the optimizer was given a ``batch_size``, it takes the Trainer's (per device × gradient
    accumulation × world size): the size of the steps it marks on replay GPUs and of the saved
    profile's key.
    """

    def __init__(self, optimizer: GlobalPowerLimitOptimizer | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.optimizer = engine_from(optimizer, kwargs)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.optimizer.batch_size is None:  # a Trainer step is one optimizer update
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
            self.optimizer.batch_size = int(per_step * args.world_size)
        self.optimizer.on_train_begin()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.optimizer.on_epoch_begin()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.optimizer.on_step_begin()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.optimizer.on_step_end()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.optimizer.on_epoch_end()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.optimizer.on_train_end()
