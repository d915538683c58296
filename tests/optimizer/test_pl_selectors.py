"""Selectors on data alone: each picks what its definition says."""

from __future__ import annotations

import math

import pytest

from zeus.errors import ZeusConfigError
from zeus.optimizer.power_limit import (
    Energy,
    MaxSlowdownConstraint,
    PowerLimitMeasurement,
    SelectionContext,
    Time,
    ZeusCost,
    choose_power_limit,
)
from zeus.optimizer.power_limit.shipped import window_log_profiles

# limit -> (time per step, average power): faster and hungrier at high limits; energy lowest at 200.
CURVE = {300: (1.00, 280.0), 250: (1.02, 240.0), 200: (1.15, 190.0), 150: (1.60, 148.0)}
MEASURED = [PowerLimitMeasurement(k, t, p * t) for k, (t, p) in CURVE.items()]


def test_energy_and_time() -> None:
    assert choose_power_limit(MEASURED, Energy(), 300) == 200  # 218.5 J vs 280, 244.8, 236.8
    assert choose_power_limit(MEASURED, Time(), 300) == 300


def test_the_pure_helper_takes_power_and_time_per_limit() -> None:
    as_mapping = {limit: (power_w, time_s) for limit, (time_s, power_w) in CURVE.items()}
    for selector in (Energy(), Time(), ZeusCost(0.5), MaxSlowdownConstraint(1.1)):
        assert choose_power_limit(as_mapping, selector, 300) == choose_power_limit(
            MEASURED, selector, 300
        )


@pytest.mark.parametrize("eta", [0.0, 0.3, 0.5, 0.8, 1.0])
def test_zeus_cost_minimises_the_documented_formula(eta: float) -> None:
    def cost(limit: int, num_gpus: int) -> float:  # (eta·P + (1−eta)·MAXPOWER·N) / throughput
        time_s, power_w = CURVE[limit]
        return (eta * power_w + (1 - eta) * 300 * num_gpus) * time_s

    expected = min(CURVE, key=lambda k: cost(k, 1))
    assert choose_power_limit(MEASURED, ZeusCost(eta), 300) == expected


def test_zeus_cost_counts_every_gpu_of_the_job_in_maxpower() -> None:
    # Measurements of a 4-GPU job (energy summed over GPUs). With MAXPOWER of one GPU only, time
    # would weigh 4x too little and the choice would drift to lower limits.
    four = [PowerLimitMeasurement(k, t, 4 * p * t) for k, (t, p) in CURVE.items()]
    context = SelectionContext(max_power_limit_w=300, num_gpus=4)
    assert ZeusCost(0.5).select(four, context) == ZeusCost(0.5).select(
        MEASURED, SelectionContext(300)
    )
    assert ZeusCost(0.5).select(four, context) == 250
    assert ZeusCost(0.5, world_size=1).select(four, context) == 200  # wrong job size: drifts


def test_eta_extremes_match_time_and_energy() -> None:
    for profile in window_log_profiles():
        measured = list(profile.measurements)
        args = (profile.max_power_limit_w, profile.num_gpus)
        assert choose_power_limit(measured, ZeusCost(0.0), *args) == choose_power_limit(
            measured, Time(), *args
        )
        assert choose_power_limit(measured, ZeusCost(1.0), *args) == choose_power_limit(
            measured, Energy(), *args
        )


def test_max_slowdown_is_least_energy_within_the_allowed_slowdown() -> None:
    assert choose_power_limit(MEASURED, MaxSlowdownConstraint(1.05), 300) == 250
    assert choose_power_limit(MEASURED, MaxSlowdownConstraint(1.10), 300) == 250
    assert choose_power_limit(MEASURED, MaxSlowdownConstraint(1.15), 300) == 200
    assert choose_power_limit(MEASURED, MaxSlowdownConstraint(1.0), 300) == 300
    scores = MaxSlowdownConstraint(1.05).scores(MEASURED, SelectionContext(300))
    assert scores[150] == math.inf


def test_ties_go_to_the_lower_limit() -> None:
    flat = [PowerLimitMeasurement(k, 1.0, 100.0) for k in (300, 250, 200)]
    assert choose_power_limit(flat, Time(), 300) == 200


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ZeusCost(1.5), "eta_knob"),
        (lambda: ZeusCost(-0.1), "eta_knob"),
        (lambda: ZeusCost(0.5, world_size=0), "world_size"),
        (lambda: MaxSlowdownConstraint(0.9), "factor"),
    ],
)
def test_bad_selector_arguments_name_the_field(make: object, field: str) -> None:
    with pytest.raises(ZeusConfigError, match=field):
        make()  # type: ignore[operator]


def test_selecting_from_nothing_is_a_clear_error() -> None:
    with pytest.raises(ZeusConfigError, match="measurements"):
        choose_power_limit([], Energy(), 300)


def test_measurement_round_trips_and_reports_average_power() -> None:
    m = PowerLimitMeasurement(250, 0.5, 100.0)
    assert m.avg_power_w == 200.0
    assert PowerLimitMeasurement.from_dict(m.to_dict()) == m
