"""On replay GPUs built from the shipped profiles, every selector picks what the profile data says.

The replay GPU keeps virtual time, so the optimizer's measurements are the profile's figures exactly
(a step at limit ``L`` lasts ``step_time_s(L)`` and draws ``power_w(L)``), whatever the machine's load.
The expected limit is computed here, independently of the selectors, from the profile's data.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from tests.optimizer.pl_training import replay_monitor, train
from zeus.device.replay import ReplayGPU, ReplayProfile, list_profiles, load_profile
from zeus.optimizer.power_limit import (
    Energy,
    GlobalPowerLimitOptimizer,
    MaxSlowdownConstraint,
    OptimumSelector,
    Time,
    ZeusCost,
    choose_power_limit,
)

WINDOW_LOGS = [name for name in list_profiles() if not load_profile(name).batch_sizes]
# One workload profile per GPU model keeps the engine test short; the data test covers every profile.
FAMILIES = ["a40-imagenet-resnet50", "v100-librispeech-deepspeech2", "p100-squad-bert-base-uncased"]

Score = Callable[[float, float], float]
"""(time per step, energy per step) -> score."""


def _candidates(profile: ReplayProfile) -> range:
    """The spec: from the maximum limit down in 25 W steps, never below the minimum."""
    return range(profile.max_power_limit_w, profile.min_power_limit_w - 1, -25)


def _figures(profile: ReplayProfile, batch_size: int | None) -> dict[int, tuple[float, float]]:
    """(time, energy) per step at each candidate, from the profile's data."""
    figures = {}
    for limit_w in _candidates(profile):
        at = profile.at(batch_size, limit_w)
        figures[limit_w] = (at.step_time_s, at.power_w * at.step_time_s)
    return figures


def _expected(profile: ReplayProfile, batch_size: int | None, score: Score) -> int:
    """The selector's formula on the profile's data; ties go to the lower limit."""
    scores = {w: score(t, e) for w, (t, e) in _figures(profile, batch_size).items()}
    best = min(scores.values())
    return min(w for w, v in scores.items() if v == best)


def _cases(
    profile: ReplayProfile, batch_size: int | None
) -> list[tuple[str, OptimumSelector, Score]]:
    max_w = profile.max_power_limit_w
    time_at_max = profile.at(batch_size, max_w).step_time_s

    def cost(eta: float) -> Score:
        return lambda t, e: eta * e + (1 - eta) * max_w * t

    def slowdown(factor: float) -> Score:
        return lambda t, e: e if t <= factor * time_at_max else math.inf

    return [
        ("energy", Energy(), lambda t, e: e),
        ("time", Time(), lambda t, e: t),
        ("zeus-cost-0.5", ZeusCost(0.5), cost(0.5)),
        ("zeus-cost-0.2", ZeusCost(0.2), cost(0.2)),
        ("zeus-cost-0.9", ZeusCost(0.9), cost(0.9)),
        ("slowdown-1.1", MaxSlowdownConstraint(1.1), slowdown(1.1)),
        ("slowdown-1.3", MaxSlowdownConstraint(1.3), slowdown(1.3)),
    ]


def _profile(
    profile: ReplayProfile, selector: OptimumSelector, batch_size: int | None
) -> GlobalPowerLimitOptimizer:
    gpu = ReplayGPU(profile)
    plo = GlobalPowerLimitOptimizer(
        replay_monitor(gpu),
        optimum_selector=selector,
        warmup_steps=1,
        profile_steps=3,
        batch_size=batch_size,
    )
    train(plo, epochs=1, steps_per_epoch=len(_candidates(profile)) * 4 + 2, end=False)
    assert plo.state == "done"
    assert gpu.get_power_limit_w() == plo.chosen_power_limit_w
    plo.on_train_end()
    assert gpu.get_power_limit_w() == profile.max_power_limit_w
    return plo


@pytest.mark.parametrize("name", list_profiles())
def test_measurements_are_the_profile_data_and_every_selector_agrees(name: str) -> None:
    """Every shipped profile: what the optimizer measures is the profile's data, to rounding, and
    each selector picks from it the limit that its formula picks on the data."""
    profile = load_profile(name)
    batch_size = profile.reference_batch_size
    plo = _profile(profile, ZeusCost(0.5), batch_size)
    figures = _figures(profile, batch_size)
    assert list(plo.measurements) == list(_candidates(profile))
    for limit_w, m in plo.measurements.items():
        assert m.time_per_step_s == pytest.approx(figures[limit_w][0], rel=1e-9)
        assert m.energy_per_step_j == pytest.approx(figures[limit_w][1], rel=1e-9)
    measured = list(plo.measurements.values())
    for label, selector, score in _cases(profile, batch_size):
        chosen = choose_power_limit(measured, selector, profile.max_power_limit_w)
        assert chosen == _expected(profile, batch_size, score), label


@pytest.mark.parametrize("name", WINDOW_LOGS + FAMILIES)
def test_the_engine_applies_what_each_selector_picks_on_the_data(name: str) -> None:
    profile = load_profile(name)
    for batch_size in profile.batch_sizes[:2] or (None,):
        for label, selector, score in _cases(profile, batch_size):
            plo = _profile(profile, selector, batch_size)
            assert plo.chosen_power_limit_w == _expected(profile, batch_size, score), label
