"""GlobalPowerLimitOptimizer as a training-loop state machine on a replay GPU."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.optimizer.pl_training import RecordingMonitor, replay_monitor, train
from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError
from zeus.optimizer.power_limit import (
    Energy,
    GlobalPowerLimitOptimizer,
    OptimumSelector,
    PowerLimitMeasurement,
    SelectionContext,
    Time,
    ZeusCost,
)


def _optimizer(gpu: ReplayGPU, **kwargs: object) -> GlobalPowerLimitOptimizer:
    options: dict[str, object] = {"warmup_steps": 1, "profile_steps": 3}
    options.update(kwargs)
    return GlobalPowerLimitOptimizer(RecordingMonitor(gpu), **options)  # type: ignore[arg-type]


def _opened(plo: GlobalPowerLimitOptimizer) -> list[tuple[str, int]]:
    assert isinstance(plo.monitor, RecordingMonitor)
    return plo.monitor.opened


def test_profiles_every_limit_from_the_maximum_down_then_applies_the_choice() -> None:
    gpu = ReplayGPU("a40-resnet50")
    plo = _optimizer(gpu, optimum_selector=Energy(), pl_step=30)
    assert plo.state == "waiting" and plo.chosen_power_limit_w is None
    train(plo, epochs=3, steps_per_epoch=30, end=False)

    expected = [300, 270, 240, 210, 180, 150, 120]
    assert plo.candidates_w == expected
    assert [limit for _, limit in _opened(plo)] == expected  # window i ran at limit i
    assert list(plo.measurements) == expected
    assert plo.state == "done"
    assert gpu.get_power_limit_w() == plo.chosen_power_limit_w
    energies = {k: m.energy_per_step_j for k, m in plo.measurements.items()}
    assert plo.chosen_power_limit_w == min(energies, key=energies.__getitem__)
    plo.on_train_end()
    assert gpu.get_power_limit_w() == 300


def test_waits_then_warms_up_then_profiles_in_the_documented_order() -> None:
    gpu = ReplayGPU("v100-resnet50")
    plo = _optimizer(gpu, wait_steps=3, warmup_steps=2, profile_steps=4)
    states = []
    plo.on_train_begin()
    plo.on_epoch_begin()
    for _ in range(3 + 2 + 4 + 1):
        plo.on_step_begin()
        plo.on_step_end()
        states.append(plo.state)
    assert states == ["waiting", "waiting", "warmup"] + ["warmup", "profiling"] + [
        "profiling"
    ] * 3 + ["warmup", "warmup"]
    assert list(plo.measurements) == [250]
    assert gpu.get_power_limit_w() == 225  # the second candidate is warming up
    plo.on_train_end()
    assert gpu.get_power_limit_w() == 250


def test_a_limit_interrupted_by_the_epoch_end_is_measured_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gpu = ReplayGPU("v100-resnet18")
    plo = _optimizer(gpu, wait_steps=0, warmup_steps=1, profile_steps=3)
    with caplog.at_level(logging.INFO, logger="zeus.optimizer"):
        train(plo, epochs=8, steps_per_epoch=6)  # a limit needs 4 steps: every 2nd straddles
    names = [name for name, _ in _opened(plo)]
    assert len(names) > len(set(names))  # some limits were opened twice
    assert set(plo.measurements) == set(plo.candidates_w)
    assert "again in this epoch" in caplog.text


def test_epochs_too_short_to_measure_stop_the_search_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gpu = ReplayGPU("v100-resnet18")
    plo = _optimizer(gpu, wait_steps=0, warmup_steps=2, profile_steps=3)
    with caplog.at_level(logging.WARNING, logger="zeus.optimizer"):
        train(plo, epochs=4, steps_per_epoch=4, end=False)
    assert plo.state == "done"
    assert plo.measurements == {}
    assert plo.chosen_power_limit_w is None
    assert gpu.get_power_limit_w() == 250  # nothing measured: original limit kept
    assert "shorter than warmup_steps + profile_steps" in caplog.text
    plo.on_train_end()


def test_saved_profile_is_reused_for_the_same_job_and_batch_size(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50")
    first = _optimizer(gpu, profile_path=tmp_path, job="resnet", batch_size=128)
    train(first, epochs=2, steps_per_epoch=25)
    assert first.state == "done"
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    saved = json.loads(files[0].read_text())
    assert saved["batch_size"] == 128 and saved["job"] == "resnet"
    assert len(saved["measurements"]) == len(first.candidates_w)

    again = _optimizer(gpu, profile_path=tmp_path, job="resnet", batch_size=128)
    again.on_train_begin()
    assert again.state == "done"  # no profiling at all
    assert again.chosen_power_limit_w == first.chosen_power_limit_w
    assert gpu.get_power_limit_w() == first.chosen_power_limit_w
    again.on_train_end()
    assert _opened(again) == []

    # A different selector re-decides from the same saved data, still without profiling.
    fastest = _optimizer(
        gpu, profile_path=tmp_path, job="resnet", batch_size=128, optimum_selector=Time()
    )
    fastest.on_train_begin()
    times = {k: m.time_per_step_s for k, m in first.measurements.items()}
    assert fastest.chosen_power_limit_w == min(times, key=times.__getitem__)
    fastest.on_train_end()

    other_batch = _optimizer(gpu, profile_path=tmp_path, job="resnet", batch_size=256)
    other_batch.on_train_begin()
    assert other_batch.state == "waiting"  # unknown batch size: profiles again
    other_batch.on_train_end()


def test_state_dict_round_trip_resumes_without_profiling_again() -> None:
    gpu = ReplayGPU("v100-bert-base-uncased")
    plo = _optimizer(gpu)
    train(plo, epochs=2, steps_per_epoch=20)
    state = json.loads(json.dumps(plo.state_dict()))
    assert state["state"] == "done"

    resumed = _optimizer(gpu)
    resumed.load_state_dict(state)
    resumed.on_train_begin()
    assert resumed.state == "done"
    assert resumed.chosen_power_limit_w == plo.chosen_power_limit_w
    assert resumed.measurements == plo.measurements
    assert gpu.get_power_limit_w() == plo.chosen_power_limit_w
    resumed.on_train_end()


def test_partial_state_dict_continues_with_the_unmeasured_limits() -> None:
    gpu = ReplayGPU("v100-resnet50")
    plo = _optimizer(gpu, wait_steps=0)
    train(plo, epochs=1, steps_per_epoch=9)  # 2 limits of 7
    state = plo.state_dict()
    assert len(state["measurements"]) == 2

    resumed = _optimizer(gpu, wait_steps=0)
    resumed.load_state_dict(state)
    train(resumed, epochs=2, steps_per_epoch=20, end=False)
    assert resumed.state == "done"
    assert set(resumed.measurements) == set(resumed.candidates_w)
    resumed.on_train_end()


class _PreferLimit(OptimumSelector):
    """A user-defined selector: the measured limit closest to a target."""

    def __init__(self, target_w: int) -> None:
        self.target_w = target_w

    def scores(
        self, measurements: Sequence[PowerLimitMeasurement], context: SelectionContext
    ) -> dict[int, float]:
        return {m.power_limit_w: abs(m.power_limit_w - self.target_w) for m in measurements}


def test_a_user_defined_selector_drives_the_choice() -> None:
    gpu = ReplayGPU("a40-resnet18")
    plo = _optimizer(gpu, optimum_selector=_PreferLimit(210))
    train(plo, epochs=2, steps_per_epoch=25, end=False)
    assert plo.chosen_power_limit_w == 200  # closest candidate (225 and 200: 15 vs 10 W)
    assert gpu.get_power_limit_w() == 200
    plo.on_train_end()


def test_default_selector_is_zeus_cost_with_eta_half() -> None:
    plo = _optimizer(ReplayGPU("a40-resnet18"))
    assert isinstance(plo.selector, ZeusCost) and plo.selector.eta_knob == 0.5


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("wait_steps", -1),
        ("warmup_steps", -1),
        ("profile_steps", 0),
        ("pl_step", 0),
        ("collective_timeout_s", 0),
        ("batch_size", 0),
    ],
)
def test_bad_arguments_name_the_field(field: str, value: int) -> None:
    with pytest.raises(ZeusConfigError, match=field):
        _optimizer(ReplayGPU("a40-resnet18"), **{field: value})


def test_unknown_search_names_the_allowed_values() -> None:
    with pytest.raises(ZeusConfigError, match="exhaustive"):
        _optimizer(ReplayGPU("a40-resnet18"), search="random")


def test_a_monitor_without_gpus_is_a_clear_error() -> None:
    plo = GlobalPowerLimitOptimizer(replay_monitor())
    with pytest.raises(ZeusConfigError, match="ZEUS_GPU=replay"):
        plo.on_train_begin()


def test_measurements_are_per_step_and_consistent_with_power() -> None:
    gpu = ReplayGPU("a40-resnet50")
    plo = _optimizer(gpu, profile_steps=4)
    train(plo, epochs=2, steps_per_epoch=25)
    for limit_w, m in plo.measurements.items():
        at = gpu.profile.at(None, limit_w)
        assert m.avg_power_w == pytest.approx(at.power_w, rel=1e-9)
        assert m.time_per_step_s == pytest.approx(at.step_time_s, rel=1e-9)  # per step, not window
        assert math.isclose(m.energy_per_step_j, m.avg_power_w * m.time_per_step_s)
    # 100 W runs 2.9x slower than 300 W on this profile.
    slowdown = plo.measurements[100].time_per_step_s / plo.measurements[300].time_per_step_s
    assert 2.8 < slowdown < 3.0
