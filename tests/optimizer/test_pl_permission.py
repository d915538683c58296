"""Without permission to change limits: observe-only, one warning, never a crash mid-training."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.optimizer.pl_training import ReadOnlyGPU, replay_monitor, train
from zeus.device.replay import ReplayGPU
from zeus.optimizer.power_limit import Energy, GlobalPowerLimitOptimizer


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("zeus.optimizer")
    ]


def _run(gpu: ReadOnlyGPU | ReplayGPU, **kwargs: object) -> GlobalPowerLimitOptimizer:
    plo = GlobalPowerLimitOptimizer(
        replay_monitor(gpu),
        optimum_selector=Energy(),
        warmup_steps=1,
        profile_steps=2,
        **kwargs,  # type: ignore[arg-type]
    )
    train(plo, epochs=2, steps_per_epoch=30)
    return plo


@pytest.mark.parametrize("honest", [True, False], ids=["capability-false", "set-raises"])
def test_read_only_gpu_gives_one_warning_and_measures_the_current_limit(
    honest: bool, caplog: pytest.LogCaptureFixture
) -> None:
    inner = ReplayGPU("a40-resnet50")
    inner.set_power_limit_w(250)  # an administrator's setting that must stay
    gpu = ReadOnlyGPU(inner, honest=honest)
    with caplog.at_level(logging.INFO, logger="zeus"):
        plo = _run(gpu)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "observe-only" in warnings[0].lower()
    assert "docs/permissions.md" in warnings[0]
    assert plo.observe_only and plo.state == "done"
    assert list(plo.measurements) == [250]  # measured where it is
    assert plo.chosen_power_limit_w == 250
    assert gpu.set_attempts == (0 if honest else 1)  # only the permission probe
    assert inner.get_power_limit_w() == 250


def test_observe_only_recommends_from_a_saved_profile(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inner = ReplayGPU("a40-resnet50")
    with_permission = _run(inner, profile_path=tmp_path)
    assert with_permission.chosen_power_limit_w not in (None, 300)
    assert inner.get_power_limit_w() == 300  # restored

    with caplog.at_level(logging.INFO, logger="zeus"):
        plo = _run(ReadOnlyGPU(inner), profile_path=tmp_path)
    assert plo.observe_only
    assert plo.chosen_power_limit_w == with_permission.chosen_power_limit_w
    assert inner.get_power_limit_w() == 300  # recommended, not applied
    assert f"recommended power limit {plo.chosen_power_limit_w} W" in caplog.text
    assert len(_warnings(caplog)) == 1


def test_permission_revoked_mid_training_degrades_without_crashing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = ReplayGPU("v100-resnet50")
    gpu = ReadOnlyGPU(inner, honest=False, allowed_sets=2)  # the probe and the first limit
    with caplog.at_level(logging.INFO, logger="zeus"):
        plo = _run(gpu)
    assert plo.observe_only and plo.state == "done"
    assert list(plo.measurements) == [
        250
    ]  # the window measured at a limit it could not set is dropped
    assert plo.chosen_power_limit_w == 250
    assert len(_warnings(caplog)) == 1
    assert inner.get_power_limit_w() == 250
