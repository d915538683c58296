"""End to end: `ZeusMaster` launches the ZeusDataLoader example as a recurring job on a replay GPU.

The driver sets the ``ZEUS_*`` variables, the loader profiles power limits, stops at the target and
writes its result file; the driver reads it back. The second recurrence reuses the power profile the
first saved in the log directory, so it does not profile again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from zeus.job import Job
from zeus.policy import DefaultBatchSizeOptimizer
from zeus.run import ZeusMaster

TRAIN = Path(__file__).resolve().parents[2] / "examples" / "zeus_dataloader" / "train.py"


@pytest.mark.slow
def test_zeus_master_runs_the_zeus_dataloader_example(tmp_path: Path) -> None:
    job = Job(
        dataset="digits",
        network="cnn",
        optimizer="adam",
        target_metric=0.9,
        max_epochs=12,
        default_bs=32,
        default_lr=1e-3,
        command=(
            *(sys.executable, str(TRAIN), "--quick"),
            *("--batch-size", "{bs}", "--lr", "{lr}", "--epochs", "{epochs}"),
        ),
    )
    master = ZeusMaster(
        DefaultBatchSizeOptimizer(),
        tmp_path / "series",
        eta_knob=0.5,
        beta_knob=None,
        env={"ZEUS_GPU": "replay:a40-resnet50", "OMP_NUM_THREADS": "1"},
    )
    state = master.run(job, batch_sizes=[32], num_recurrence=2)

    runs = state.runs
    assert [r.status for r in runs] == ["reached", "reached"], [r.message for r in runs]
    logs = tmp_path / "series" / "logs"
    for run in runs:
        result = json.loads((logs / f"{run.job_id}.result.json").read_text())
        assert result["job_id"] == run.job_id
        assert result["batch_size"] == run.batch_size == 32
        assert result["reached"] is True and result["final_metric"] >= 0.9
        assert result["max_power_w"] == 300 and result["energy_j"] > 0
        assert run.power_limit_w == result["power_limit_w"] is not None
    assert runs[0].power_limit_w == runs[1].power_limit_w  # same saved profile, same choice
    assert list(logs.glob("*+zeus-dataloader+bs32.json"))  # the profile the loader saved
    second_log = Path(runs[1].log_path).read_text()
    assert "reusing power-limit profile" in second_log
    assert "profiling power limit" not in second_log
