"""The power-limit optimizer on hardware-like GPUs (fake NVML): temperature and throttle reasons in
each measurement, a warning for throttling the limit does not explain, MIG boards left alone, one
GPU model per job, cancelled windows left out of the window log."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from tests.device.fake_nvml import FakeBoard, FakeMig, FakeNVML
from tests.optimizer.pl_training import replay_monitor, train
from zeus.device.nvml import nvml_gpus
from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError
from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer
from zeus.optimizer.power_limit.hardware import ThrottleWatch
from zeus.optimizer.power_limit.selectors import PowerLimitMeasurement

HW_THERMAL, SW_POWER_CAP = 0x40, 0x4  # NVML clocks event reason bits


def _optimize(
    nvml: FakeNVML, on_step: object = None, **kwargs: object
) -> GlobalPowerLimitOptimizer:
    """One epoch over the fake boards; ``on_step(board)`` may change a board before each step."""
    monitor = ZeusMonitor(gpus=nvml_gpus(pynvml=nvml), cpus=[], sync_execution_with="none")
    plo = GlobalPowerLimitOptimizer(
        monitor,
        wait_steps=1,
        warmup_steps=1,
        profile_steps=3,
        pl_step=100,
        **kwargs,  # type: ignore[arg-type]
    )
    plo.on_train_begin()
    plo.on_epoch_begin()
    for _ in range(40):
        plo.on_step_begin()
        for board in nvml.boards:
            if callable(on_step):
                on_step(board)
            board.power_mw = board.limit_mw * 3 // 4
        nvml.tick(0.05)
        plo.on_step_end()
    plo.on_epoch_end()
    plo.on_train_end()
    return plo


def test_each_measurement_records_temperature_and_throttle_reasons(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def heat(board: FakeBoard) -> None:  # hotter at higher limits; always power-capped
        board.temperature_c = 40 + board.limit_mw // 10_000
        board.reasons = SW_POWER_CAP

    nvml = FakeNVML([FakeBoard(uuid="GPU-a")])
    with caplog.at_level(logging.WARNING, logger="zeus.optimizer"):
        plo = _optimize(nvml, heat)
    assert list(plo.measurements) == [400, 300, 200, 100]
    for limit_w, m in plo.measurements.items():
        assert m.max_temperature_c == 40 + limit_w // 10
        assert m.throttle_reasons == ("power_cap",)
    assert "throttled" not in caplog.text  # the power limit explains power capping


def test_thermal_throttling_while_profiling_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def overheat_at_400(board: FakeBoard) -> None:
        hot = board.limit_mw == 400_000
        board.reasons = HW_THERMAL | SW_POWER_CAP if hot else SW_POWER_CAP
        board.temperature_c = 91 if hot else 70

    nvml = FakeNVML([FakeBoard(uuid="GPU-a")])
    with caplog.at_level(logging.WARNING, logger="zeus.optimizer"):
        plo = _optimize(nvml, overheat_at_400)
    assert plo.measurements[400].throttle_reasons == ("power_cap", "thermal")
    warnings = [r.getMessage() for r in caplog.records if "throttled" in r.getMessage()]
    assert len(warnings) == 1
    assert "power limit 400 W" in warnings[0] and "thermal" in warnings[0]
    assert "91 °C" in warnings[0]


def test_replay_gpus_record_no_thermals() -> None:
    plo = GlobalPowerLimitOptimizer(
        replay_monitor(ReplayGPU("a40-resnet50")), warmup_steps=1, profile_steps=2, pl_step=100
    )
    train(plo, epochs=1, steps_per_epoch=30)
    assert plo.measurements
    assert all(
        m.max_temperature_c is None and m.throttle_reasons is None
        for m in plo.measurements.values()
    )


def test_gpus_of_different_models_are_refused() -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-a"), FakeBoard(uuid="GPU-b", name="NVIDIA A40")])
    monitor = ZeusMonitor(gpus=nvml_gpus(pynvml=nvml), cpus=[], sync_execution_with="none")
    with pytest.raises(
        ZeusConfigError, match=r"different models \(NVIDIA A100-SXM4-40GB, NVIDIA A40\)"
    ):
        GlobalPowerLimitOptimizer(monitor)


def test_mig_instance_is_neither_profiled_nor_limited(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    board = FakeBoard(uuid="GPU-board")
    board.migs = [FakeMig(uuid="MIG-a", parent=board), FakeMig(uuid="MIG-b", parent=board)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-a")
    nvml = FakeNVML([board])
    with caplog.at_level(logging.WARNING, logger="zeus.optimizer"):
        plo = _optimize(nvml)
    assert plo.state == "done" and plo.chosen_power_limit_w is None
    assert plo.measurements == {}
    assert nvml.set_calls == []
    assert "GlobalPowerLimitOptimizer neither profiles nor changes power limits" in caplog.text
    assert "GPU 0 (board GPU-board)" in caplog.text


class CountingMonitor(ZeusMonitor):
    cancelled = 0

    def cancel_window(self, name: str) -> None:
        self.cancelled += 1
        super().cancel_window(name)


def test_interrupted_measurements_stay_out_of_the_window_log(tmp_path: Path) -> None:
    """An epoch that ends mid-measurement cancels its window: the log holds only the windows whose
    figures the optimizer kept."""
    log = tmp_path / "windows.csv"
    monitor = CountingMonitor(
        gpus=[ReplayGPU("a40-resnet50")], cpus=[], sync_execution_with="none", window_log=log
    )
    plo = GlobalPowerLimitOptimizer(monitor, warmup_steps=2, profile_steps=5, pl_step=100)
    train(plo, epochs=3, steps_per_epoch=11)  # the 2nd and 3rd limits each start a window too late
    assert list(plo.measurements) == [300, 200, 100]
    assert monitor.cancelled == 2
    with log.open(newline="") as file:
        logged = [row["window"] for row in csv.DictReader(file)]
    assert logged == [f"__GlobalPowerLimitOptimizer_{w}" for w in (300, 200, 100)]


def test_ranks_combine_to_the_hottest_reading_and_every_reason() -> None:
    rank0 = ThrottleWatch([])
    rank0.max_temperature_c, rank0.reasons = 70.0, {"power_cap"}
    rank1 = ThrottleWatch([])
    rank1.max_temperature_c, rank1.reasons = 84.0, {"thermal"}
    rank2 = ThrottleWatch([])  # a replay GPU: nothing recorded
    rows = [rank0.row(), rank1.row(), rank2.row()]
    assert ThrottleWatch.combine(rows) == (84.0, ("power_cap", "thermal"))
    assert ThrottleWatch.combine([rank2.row()]) == (None, None)


def test_measurement_with_thermals_round_trips() -> None:
    m = PowerLimitMeasurement(250, 0.1, 20.0, max_temperature_c=77.0, throttle_reasons=("thermal",))
    assert PowerLimitMeasurement.from_dict(m.to_dict()) == m
    plain = PowerLimitMeasurement(250, 0.1, 20.0)
    assert set(plain.to_dict()) == {"power_limit_w", "time_per_step_s", "energy_per_step_j"}
