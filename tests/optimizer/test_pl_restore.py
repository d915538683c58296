"""Original power limits come back on normal end, exceptions, SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.optimizer.pl_training import replay_monitor, train
from zeus.device.replay import ReplayGPU
from zeus.optimizer.power_limit import Energy, GlobalPowerLimitOptimizer

PROFILE = "a40-resnet50"
CHILD = Path(__file__).with_name("pl_child.py")
REPO = Path(__file__).resolve().parents[2]


def _start(mode: str, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, ZEUS_GPU=f"replay:{PROFILE}", PYTHONPATH=str(REPO))
    child = subprocess.Popen(
        [sys.executable, str(CHILD), mode, str(tmp_path / "marker")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("READY"):
        child.kill()
        pytest.fail(f"child did not get ready: {line!r} {child.communicate()[1]}")
    return child, int(line.split()[1])


def _persisted_limit_w() -> int:
    """What another process (a fresh replay GPU on the same state dir) sees: the driver setting."""
    return ReplayGPU(PROFILE).get_power_limit_w()


def test_normal_end_restores_in_process() -> None:
    gpu = ReplayGPU(PROFILE)
    plo = GlobalPowerLimitOptimizer(replay_monitor(gpu), Energy(), warmup_steps=1, profile_steps=2)
    train(plo, epochs=2, steps_per_epoch=25, end=False)
    assert _persisted_limit_w() == plo.chosen_power_limit_w != 300
    plo.on_train_end()
    assert _persisted_limit_w() == 300


@pytest.mark.parametrize(
    ("sig", "returncode", "chained"),
    [
        (signal.SIGTERM, -signal.SIGTERM, "received SIGTERM"),  # default action still kills it
        (signal.SIGINT, -signal.SIGINT, "KeyboardInterrupt"),  # Python's handler still raises
    ],
)
def test_signal_mid_training_restores_then_chains(
    sig: signal.Signals, returncode: int, chained: str, tmp_path: Path
) -> None:
    child, chosen_w = _start("forever", tmp_path)
    assert chosen_w != 300 and _persisted_limit_w() == chosen_w
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == returncode, stderr
    assert _persisted_limit_w() == 300
    assert "restored GPU 0 power limit to its original 300 W" in stderr
    assert chained in stderr


def test_own_sigterm_handler_still_runs_after_restoring(tmp_path: Path) -> None:
    child, _ = _start("own-handler", tmp_path)
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=30)
    assert child.returncode == 3
    assert (tmp_path / "marker").read_text() == "own handler ran"
    assert _persisted_limit_w() == 300


def test_uncaught_exception_restores_at_exit(tmp_path: Path) -> None:
    child, chosen_w = _start("raise", tmp_path)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 1 and "training crashed" in stderr
    assert chosen_w != 300 and _persisted_limit_w() == 300
    assert "(interpreter exit)" in stderr


def test_restore_on_a_signal_is_visible_without_logging_configuration(tmp_path: Path) -> None:
    child, _ = _start("unconfigured-logging", tmp_path)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=30)
    assert _persisted_limit_w() == 300
    assert "restored GPU 0 power limit to its original 300 W (received SIGTERM)" in stderr
