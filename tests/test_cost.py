"""`CostModel`: the one energy–time cost, validated where it is built; `Job`'s JSON form."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from zeus.cost import CostModel, check_eta
from zeus.errors import ZeusConfigError
from zeus.job import Job


def test_cost_is_the_documented_formula_on_numbers_and_arrays() -> None:
    model = CostModel(eta_knob=0.25, max_power_w=300.0)
    assert model.cost(1000.0, 10.0) == pytest.approx(0.25 * 1000 + 0.75 * 300 * 10)
    energy, time = np.array([100.0, 200.0]), np.array([1.0, 3.0])
    np.testing.assert_allclose(model.cost(energy, time), 0.25 * energy + 225.0 * time)
    assert CostModel(1.0, 300.0).cost(5.0, 99.0) == 5.0  # energy only
    assert CostModel(0.0, 300.0).cost(5.0, 2.0) == 600.0  # time only, at the maximum power
    assert CostModel(0.5, 0.0).cost(7.0, 3.0) == 3.5  # a job without GPUs: only energy counts


@pytest.mark.parametrize(
    ("eta", "max_power_w", "message"),
    [
        (1.5, 300.0, "eta_knob must be >= 0 and <= 1, got 1.5"),
        (float("nan"), 300.0, "eta_knob must be >= 0 and <= 1"),
        (0.5, -1.0, "max_power_w must be >= 0 and < inf, got -1.0"),
        (0.5, float("inf"), "max_power_w must be >= 0 and < inf"),
    ],
)
def test_bad_knobs_are_refused_where_the_model_is_built(
    eta: float, max_power_w: float, message: str
) -> None:
    with pytest.raises(ZeusConfigError, match=message):
        CostModel(eta, max_power_w)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CostModel(0.5, 1.0).eta_knob = 2.0  # type: ignore[misc]


def test_check_eta_names_the_field_it_checks() -> None:
    assert check_eta(0.3) == 0.3
    with pytest.raises(ZeusConfigError, match=r"^ZEUS_ETA_KNOB must be >= 0 and <= 1, got -0\.1$"):
        check_eta(-0.1, "ZEUS_ETA_KNOB")


def test_job_round_trips_through_json() -> None:
    job = Job("digits", "cnn", "adam", 0.9, 10, 64, 1e-3, command=("python", "t.py", "{bs}"))
    data = json.loads(json.dumps(job.to_dict()))
    assert data["command"] == ["python", "t.py", "{bs}"]
    assert Job.from_dict(data) == job and hash(Job.from_dict(data)) == hash(job)
    with pytest.raises(
        ZeusConfigError, match=r"malformed job .*unexpected keyword argument 'colour'"
    ):
        Job.from_dict({**data, "colour": "red"})
