"""Ctrl-C during a real ZeusDataLoader job: the child restores the replay GPU's power limit."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from zeus.demo.job import DEMO_BATCH_SIZES, demo_job
from zeus.device.replay import ReplayGPU
from zeus.policy import DefaultBatchSizeOptimizer
from zeus.run.history import load_series
from zeus.run.master import ZeusMaster


@pytest.mark.slow
def test_interrupt_mid_training_restores_the_power_limit(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50")  # same state dir as the child: ZEUS_STATE_DIR of this test
    gpu.reset_power_limit()
    seen_limits: list[int] = []

    def interrupt_once_throttled() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            limit = gpu.get_power_limit_w()
            if limit < gpu.max_power_limit_w:  # the job is profiling or applied its choice
                seen_limits.append(limit)
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    master = ZeusMaster(
        DefaultBatchSizeOptimizer(),
        tmp_path / "run",
        profile_params=(2, 5),
        env={"ZEUS_GPU": "replay:a40-resnet50"},
    )
    watcher = threading.Thread(target=interrupt_once_throttled, daemon=True)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        master.run(demo_job(tmp_path), DEMO_BATCH_SIZES, 1)
    watcher.join()

    assert seen_limits and seen_limits[0] < 300
    assert gpu.get_power_limit_w() == 300  # restored by the child's SIGTERM handler
    saved = load_series(tmp_path / "run")
    assert saved is not None and [r.status for r in saved.runs] == ["interrupted"]
    log = Path(saved.runs[0].log_path).read_text()
    assert "restored GPU 0 power limit to its original 300 W" in log
