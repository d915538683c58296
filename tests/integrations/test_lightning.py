"""The Lightning adapter drives the power-limit engine from a real `Trainer.fit` on the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zeus.device.replay import ReplayGPU
from zeus.monitor import ZeusMonitor

lightning = pytest.importorskip("lightning")

pytestmark = [
    # Lightning 2.6 still builds torch's deprecated pytree LeafSpec (a torch 2.13 FutureWarning).
    pytest.mark.filterwarnings(
        "ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning"
    ),
]


class DigitsClassifier(lightning.LightningModule):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def digits_loader() -> DataLoader[Any]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    return DataLoader(TensorDataset(x, torch.tensor(data.target)), batch_size=32, shuffle=True)


def test_fit_profiles_and_applies_a_power_limit(tmp_path: Path) -> None:
    from zeus.integrations.lightning import LightningGlobalPowerLimitOptimizer

    gpu = ReplayGPU("a40-imagenet-resnet50")
    monitor = ZeusMonitor(gpus=[gpu], sync_execution_with="none")
    callback = LightningGlobalPowerLimitOptimizer(monitor=monitor, warmup_steps=1, profile_steps=2)
    seen_limits: list[int] = []

    class RecordLimit(lightning.Callback):  # type: ignore[misc]
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            seen_limits.append(gpu.get_power_limit_w())

    torch.manual_seed(0)
    trainer = lightning.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        callbacks=[callback, RecordLimit()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(DigitsClassifier(), digits_loader())

    engine = callback.optimizer
    assert engine.state == "done"
    assert engine.batch_size == 32  # from the train dataloader: the replay GPU timed batch 32
    for limit_w, m in engine.measurements.items():
        assert m.time_per_step_s == pytest.approx(gpu.profile.at(32, limit_w).step_time_s)
    assert set(engine.measurements) == set(range(100, 301, 25))
    assert seen_limits[1] == engine.chosen_power_limit_w  # applied from the second epoch on
    assert gpu.get_power_limit_w() == 300  # restored by on_train_end
    assert callback.state_dict() == engine.state_dict()
