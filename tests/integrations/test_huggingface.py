"""The Hugging Face adapter drives the power-limit engine from a real `Trainer` run on the CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError
from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer

transformers = pytest.importorskip("transformers")

LIMITS_W = set(range(100, 301, 25))  # the a40-imagenet-resnet50 replay profile


class TokenDataset(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Label 1 when token 5 appears in the sequence: learnable by a one-layer BERT."""

    def __init__(self, n: int, seq_len: int = 12, vocab: int = 30) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(6, vocab, (n, seq_len), generator=generator)
        self.labels = torch.randint(0, 2, (n,), generator=generator)
        self.ids[self.labels == 1, 3] = 5

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones_like(self.ids[i]),
            "labels": self.labels[i],
        }


def test_trainer_profiles_and_applies_a_power_limit(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from zeus.integrations.huggingface import HFGlobalPowerLimitOptimizer

    gpu = ReplayGPU("a40-imagenet-resnet50")
    monitor = ZeusMonitor(gpus=[gpu], sync_execution_with="none")
    callback = HFGlobalPowerLimitOptimizer(monitor=monitor, warmup_steps=1, profile_steps=2)
    seen_limits: list[int] = []

    class RecordLimit(transformers.TrainerCallback):  # type: ignore[misc]
        def on_epoch_begin(
            self, args: object, state: object, control: object, **kw: object
        ) -> None:
            seen_limits.append(gpu.get_power_limit_w())

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_train_epochs=2,
        learning_rate=1e-3,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=BertForSequenceClassification(config),
        args=args,
        train_dataset=TokenDataset(256),
        callbacks=[callback, RecordLimit()],
    )
    trainer.train()

    engine = callback.optimizer
    assert engine.state == "done"
    assert engine.batch_size == 8  # from the Trainer's arguments: the replay GPU timed batch 8
    for limit_w, m in engine.measurements.items():
        assert m.time_per_step_s == pytest.approx(gpu.profile.at(8, limit_w).step_time_s)
    assert set(engine.measurements) == LIMITS_W
    assert engine.chosen_power_limit_w in LIMITS_W
    assert seen_limits[-1] == engine.chosen_power_limit_w  # applied in the last epoch
    assert gpu.get_power_limit_w() == 300  # restored by on_train_end


def test_adapter_takes_an_optimizer_or_its_arguments_not_both() -> None:
    from zeus.integrations.huggingface import HFGlobalPowerLimitOptimizer

    monitor = ZeusMonitor(gpus=[ReplayGPU("a40-resnet50")], sync_execution_with="none")
    engine = GlobalPowerLimitOptimizer(monitor)
    assert HFGlobalPowerLimitOptimizer(engine).optimizer is engine
    with pytest.raises(ZeusConfigError, match="not both"):
        HFGlobalPowerLimitOptimizer(engine, warmup_steps=3)


def test_integrations_package_imports_no_framework() -> None:
    import subprocess

    code = (
        "import sys, zeus.integrations; "
        "print(any(m in sys.modules for m in ('transformers', 'lightning')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
