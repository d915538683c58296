"""ZeusMonitor conveniences and honesty checks: cancelling windows, the window log, stalled counters,
shared boards, mixed vendors, a RAPL zone that disappears."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.device.fake_amdsmi import FakeAmdGPU, FakeAmdSmi
from tests.device.fake_nvml import FakeBoard, FakeMig, FakeNVML
from tests.device.fake_sysfs import add_uj, make_rapl
from zeus.device.amd import amd_gpus
from zeus.device.counters import CounterPoller
from zeus.device.nvml import nvml_gpus
from zeus.device.rapl import rapl_cpus
from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError
from zeus.monitor import PowerMonitor, ZeusMonitor


def _replay_monitor(tmp_path: Path, **kwargs: Any) -> ZeusMonitor:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path / "state")
    return ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none", **kwargs)


# -- cancel and restart --------------------------------------------------------------------------


def test_cancel_then_restart_measures_only_the_restart(tmp_path: Path) -> None:
    monitor = _replay_monitor(tmp_path)
    monitor.begin_window("train")
    for _ in range(3):
        monitor.step(128)
    monitor.cancel_window("train")  # e.g. a validation pass crept in: throw it away
    assert monitor.open_windows == []
    monitor.begin_window("train")
    with monitor.window("two steps") as reference:
        monitor.step(128)
        monitor.step(128)
    restarted = monitor.end_window("train")
    assert reference.measurement is not None
    assert restarted.time_s == pytest.approx(reference.measurement.time_s)
    assert restarted.total_energy_j == pytest.approx(reference.measurement.total_energy_j)


def test_cancel_a_window_that_is_not_open(tmp_path: Path) -> None:
    monitor = _replay_monitor(tmp_path)
    monitor.begin_window("a")
    with pytest.raises(ZeusConfigError, match="window 'b' is not open \\(open windows: a\\)"):
        monitor.cancel_window("b")


# -- the window log ----------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_csv_log_has_one_row_per_finished_window(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "windows.csv"
    monitor = _replay_monitor(tmp_path, window_log=log)
    measured = {}
    for name in ("epoch 0", "epoch 1"):
        monitor.begin_window(name)
        monitor.step(64)
        measured[name] = monitor.end_window(name)
    monitor.begin_window("skipped")
    monitor.cancel_window("skipped")
    rows = _rows(log)
    assert [r["window"] for r in rows] == ["epoch 0", "epoch 1"]
    for row in rows:
        m = measured[row["window"]]
        assert float(row["time_s"]) == pytest.approx(m.time_s, abs=1e-6)
        assert float(row["gpu0_energy_j"]) == pytest.approx(m.gpu_energy_j[0], abs=1e-5)
        assert float(row["gpu_energy_j"]) == pytest.approx(m.total_energy_j, abs=1e-5)
        assert row["method"] == "replay:counter"
        assert float(row["end_unix_s"]) >= float(row["start_unix_s"])
    # A restarted job appends to the same log.
    again = _replay_monitor(tmp_path, window_log=log)
    with again.window("epoch 2"):
        again.step(64)
    assert [r["window"] for r in _rows(log)] == ["epoch 0", "epoch 1", "epoch 2"]


def test_jsonl_log(tmp_path: Path) -> None:
    root = make_rapl(tmp_path / "powercap", sockets=1)
    log = tmp_path / "windows.jsonl"
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path / "state")
    monitor = ZeusMonitor(
        gpus=[gpu],
        cpus=rapl_cpus(root, CounterPoller(background=False)),
        sync_execution_with="none",
        window_log=log,
    )
    monitor.begin_window("w")
    monitor.step(32)
    add_uj(root / "intel-rapl:0", 4_000_000)
    add_uj(root / "intel-rapl:0" / "intel-rapl:0:1", 500_000)
    m = monitor.end_window("w")
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["window"] == "w" and record["method"] == "replay:counter"
    assert record["gpu"] == {"0": pytest.approx(m.gpu_energy_j[0])}
    assert record["cpu"] == {"0": pytest.approx(4.0)}
    assert record["dram"] == {"0": pytest.approx(0.5)}


def test_log_suffix_and_columns_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ZeusConfigError, match=r"window_log must end in \.csv or \.jsonl"):
        _replay_monitor(tmp_path, window_log=tmp_path / "windows.txt")
    log = tmp_path / "other.csv"
    log.write_text("window,something_else\n")
    with pytest.raises(ZeusConfigError, match="has columns window,something_else"):
        _replay_monitor(tmp_path, window_log=log)


# -- stalled and zero counters -----------------------------------------------------------------------


def test_stalled_counter_falls_back_to_power_integration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-s", power_mw=200_000, counter_stalled=True)])
    monitor = ZeusMonitor(
        gpus=nvml_gpus(pynvml=nvml),
        cpus=[],
        sync_execution_with="none",
        counter_stall_s=0.05,
        power_interval_s=0.01,
    )
    try:
        with caplog.at_level(logging.WARNING, logger="zeus.monitor.energy"):
            monitor.begin_window("stalls")
            time.sleep(0.1)
            first = monitor.end_window("stalls")
        assert first.method == "stalled+power"
        assert first.gpu_energy_j[0] == pytest.approx(200.0 * first.time_s)
        assert "did not move" in caplog.text
        monitor.begin_window("after")
        time.sleep(0.1)
        after = monitor.end_window("after")
    finally:
        monitor.close()
    assert after.method == "power_integration"
    assert after.gpu_energy_j[0] == pytest.approx(200.0 * after.time_s, rel=0.01)


def test_short_window_is_not_a_stall() -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-s", counter_stalled=True)])
    monitor = ZeusMonitor(gpus=nvml_gpus(pynvml=nvml), cpus=[], sync_execution_with="none")
    monitor.begin_window("tiny")
    assert monitor.end_window("tiny").method == "counter+power"  # under counter_stall_s (1 s)


def test_amd_counter_that_stalls_and_one_that_reads_zero() -> None:
    smi = FakeAmdSmi(
        [FakeAmdGPU(uuid="a", counter="stalled", power_w=300), FakeAmdGPU(uuid="b", counter="zero")]
    )
    gpus = amd_gpus(amdsmi=smi, poller=CounterPoller(background=False))
    monitor = ZeusMonitor(
        gpus=gpus, cpus=[], sync_execution_with="none", counter_stall_s=0.05, power_interval_s=0.01
    )
    try:
        monitor.begin_window("w")
        time.sleep(0.1)
        m = monitor.end_window("w")
    finally:
        monitor.close()
    assert m.method == "mixed(power_integration,stalled+power)"
    assert m.gpu_energy_j[0] == pytest.approx(300.0 * m.time_s)
    assert m.gpu_energy_j[1] == pytest.approx(400.0 * m.time_s, rel=0.01)


# -- shared boards and mixed vendors -----------------------------------------------------------------


def _mig_nvml() -> FakeNVML:
    board = FakeBoard(uuid="GPU-board")
    board.migs = [FakeMig(uuid=f"MIG-{k}", parent=board) for k in ("a", "b")]
    return FakeNVML([board])


def test_two_instances_of_one_board_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-a,MIG-b")
    gpus = nvml_gpus(pynvml=_mig_nvml())
    with pytest.raises(ZeusConfigError, match=r"gpus \[0, 1\] are on one board \(GPU-board\)"):
        ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none")


def test_one_instance_is_measured_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-b")
    nvml = _mig_nvml()
    with caplog.at_level(logging.WARNING, logger="zeus.monitor.energy"):
        monitor = ZeusMonitor(gpus=nvml_gpus(pynvml=nvml), cpus=[], sync_execution_with="none")
    assert "shares board GPU-board" in caplog.text and "other tenants' work" in caplog.text
    monitor.begin_window("w")
    nvml.tick(1.0)
    assert monitor.end_window("w").gpu_energy_j[0] == pytest.approx(250.0)  # the board's


def test_mixed_vendors_in_one_monitor() -> None:
    """An NVIDIA GPU without a counter and an AMD GPU whose counter reads 0 are both index 0 of
    their backends: each gets its own sampler, keyed by its place in the monitor."""
    nvml = FakeNVML([FakeBoard(uuid="GPU-p100", arch=4, power_mw=150_000)])
    smi = FakeAmdSmi([FakeAmdGPU(uuid="z", counter="zero", power_w=350)])
    gpus = nvml_gpus(pynvml=nvml) + amd_gpus(amdsmi=smi, poller=CounterPoller(background=False))
    monitor = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none", power_interval_s=0.01)
    try:
        monitor.begin_window("w")
        time.sleep(0.1)
        m = monitor.end_window("w")
    finally:
        monitor.close()
    assert m.method == "power_integration"
    assert m.gpu_energy_j[0] == pytest.approx(150.0 * m.time_s, rel=0.01)
    assert m.gpu_energy_j[1] == pytest.approx(350.0 * m.time_s, rel=0.01)


def test_power_monitor_refuses_repeated_indices() -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-a")])
    smi = FakeAmdSmi([FakeAmdGPU(uuid="b")])
    gpus = nvml_gpus(pynvml=nvml) + amd_gpus(amdsmi=smi, poller=CounterPoller(background=False))
    with pytest.raises(ZeusConfigError, match=r"indices \[0, 0\] repeat"):
        PowerMonitor(gpus)


# -- a RAPL zone that disappears ---------------------------------------------------------------------


def test_cpu_whose_zone_disappears_is_dropped_not_crashed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_rapl(tmp_path / "powercap", sockets=2)
    cpus = rapl_cpus(root, CounterPoller(background=False))
    monitor = ZeusMonitor(gpus=[], cpus=cpus, sync_execution_with="none")
    monitor.begin_window("w")
    add_uj(root / "intel-rapl:0", 3_000_000)
    shutil.rmtree(root / "intel-rapl:1")  # socket 1's zone is gone
    with caplog.at_level(logging.WARNING, logger="zeus.monitor.energy"):
        m = monitor.end_window("w")
    assert m.cpu_energy_j == {0: pytest.approx(3.0)}
    assert "CPU 1: no longer measuring" in caplog.text and "RAPL zone is gone" in caplog.text
    with monitor.window("next") as w:
        add_uj(root / "intel-rapl:0", 1_000_000)
    assert w.measurement is not None and w.measurement.cpu_energy_j == {0: pytest.approx(1.0)}
