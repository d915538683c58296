"""`ProfileReport`: the numbers and the exact text the power-limit examples print."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.optimizer.pl_training import replay_monitor, train
from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError
from zeus.optimizer.power_limit import (
    Energy,
    GlobalPowerLimitOptimizer,
    PowerLimitMeasurement,
    ProfileReport,
)

# Out of order on purpose: the report sorts highest limit first.
MEASUREMENTS = [
    PowerLimitMeasurement(250, time_per_step_s=0.120, energy_per_step_j=26.4),
    PowerLimitMeasurement(300, time_per_step_s=0.100, energy_per_step_j=30.0),
    PowerLimitMeasurement(275, time_per_step_s=0.105, energy_per_step_j=27.0),
]


def test_numbers_compare_the_chosen_limit_with_the_highest_measured_one() -> None:
    report = ProfileReport.from_measurements(MEASUREMENTS, chosen_power_limit_w=275)
    assert [m.power_limit_w for m in report.rows] == [300, 275, 250]
    assert (report.chosen_power_limit_w, report.max_power_limit_w) == (275, 300)
    assert report.chosen.energy_per_step_j == 27.0 and report.at_max.energy_per_step_j == 30.0
    assert report.energy_saved_fraction == pytest.approx(0.10)  # 1 - 27 / 30
    assert report.time_change_fraction == pytest.approx(0.05)  # 0.105 / 0.100 - 1


def test_choosing_the_maximum_saves_nothing_and_a_costlier_limit_saves_a_negative_amount() -> None:
    at_max = ProfileReport.from_measurements(MEASUREMENTS, chosen_power_limit_w=300)
    assert at_max.energy_saved_fraction == 0.0 and at_max.time_change_fraction == 0.0
    costly = [*MEASUREMENTS, PowerLimitMeasurement(225, 0.2, 33.0)]
    report = ProfileReport.from_measurements(costly, chosen_power_limit_w=225)
    assert report.energy_saved_fraction == pytest.approx(-0.10)
    assert report.time_change_fraction == pytest.approx(1.0)
    assert report.lines()[-1].endswith("saved -10.0%, time per step +100.0%")


def test_text_is_the_examples_table_byte_for_byte() -> None:
    report = ProfileReport.from_measurements(MEASUREMENTS, chosen_power_limit_w=275)
    assert report.format() == (
        "power limit [W]  time/step [ms]  energy/step [J]  avg power [W]\n"
        "            300          100.00          30.0000          300.0\n"
        "            275          105.00          27.0000          257.1\n"
        "            250          120.00          26.4000          220.0\n"
        "chosen power limit: 275 W (maximum 300 W)\n"
        "energy per step: 30.0000 J at 300 W -> 27.0000 J at 275 W: saved 10.0%, "
        "time per step +5.0%"
    )
    assert report.format() == "\n".join(report.lines())


@pytest.mark.parametrize(
    ("measurements", "chosen_w", "field"),
    [
        ([], 300, "rows"),
        (MEASUREMENTS, 200, "chosen_power_limit_w"),
        ([*MEASUREMENTS, PowerLimitMeasurement(300, 0.1, 31.0)], 300, "rows"),
    ],
)
def test_inconsistent_input_is_a_config_error_naming_the_field(
    measurements: list[PowerLimitMeasurement], chosen_w: int, field: str
) -> None:
    with pytest.raises(ZeusConfigError, match=field):
        ProfileReport.from_measurements(measurements, chosen_power_limit_w=chosen_w)


def test_report_of_a_finished_optimizer_on_a_replay_gpu(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    plo = GlobalPowerLimitOptimizer(
        replay_monitor(gpu),
        optimum_selector=Energy(),
        wait_steps=0,
        warmup_steps=1,
        profile_steps=3,
    )
    with pytest.raises(ZeusConfigError, match="no power limit chosen"):
        ProfileReport.of(plo)
    train(plo, epochs=2, steps_per_epoch=40)
    assert plo.state == "done" and plo.chosen_power_limit_w is not None

    report = ProfileReport.of(plo)
    measured = plo.measurements
    assert [m.power_limit_w for m in report.rows] == sorted(measured, reverse=True)
    assert report.max_power_limit_w == gpu.max_power_limit_w
    assert report.chosen_power_limit_w == plo.chosen_power_limit_w
    chosen, at_max = measured[plo.chosen_power_limit_w], measured[gpu.max_power_limit_w]
    expected_saved = 1 - chosen.energy_per_step_j / at_max.energy_per_step_j
    expected_slower = chosen.time_per_step_s / at_max.time_per_step_s - 1
    assert report.energy_saved_fraction == pytest.approx(expected_saved)
    assert report.time_change_fraction == pytest.approx(expected_slower)
    # Energy() picked the least energy per step, so nothing measured saves more than it.
    assert all(m.energy_per_step_j >= chosen.energy_per_step_j for m in report.rows)
    assert report.energy_saved_fraction >= 0
