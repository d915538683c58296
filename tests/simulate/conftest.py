"""A tiny hand-made trace whose every figure a test can compute by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from zeus.job import Job

# Per-epoch figures (time s, power W) per (batch size, power limit). MAXPOWER = 200, eta = 0.5.
# bs 32: pl 200 -> cost 2000/epoch, pl 100 -> 2400: JIT picks 200; profiling epoch costs 2200.
# bs 16: never reaches the target; pl 200 -> 4500/epoch; profiling epoch costs 5250.
# bs 64: one epoch costs 30000 at any limit: never fits a budget of 2 x 10200.
POWER = {
    (16, 200): (30.0, 100.0),
    (16, 100): (40.0, 100.0),
    (32, 200): (10.0, 200.0),
    (32, 100): (16.0, 100.0),
    (64, 200): (150.0, 200.0),
    (64, 100): (150.0, 200.0),
}
TARGET_EPOCH = {16: "", 32: "5", 64: "2"}


@pytest.fixture
def toy_traces(tmp_path: Path) -> tuple[Path, Path]:
    train = tmp_path / "train.csv"
    rows = ["dataset,network,batch_size,optimizer,learning_rate,run,target_metric,target_epoch"]
    rows += [f"toy,net,{bs},sgd,0.1,1,0.5,{e}" for bs, e in TARGET_EPOCH.items()]
    train.write_text("\n".join(rows) + "\n")
    power = tmp_path / "summary_power_toy.csv"
    rows = ["dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power"]
    rows += [f"toy,net,{bs},sgd,{pl},{t},{p}" for (bs, pl), (t, p) in POWER.items()]
    power.write_text("\n".join(rows) + "\n")
    return train, power


@pytest.fixture
def toy_job() -> Job:
    return Job("toy", "net", "sgd", target_metric=0.5, max_epochs=50, default_bs=32)
