"""ZeusMonitor energy methods on fake NVML GPUs (counter, short windows, power integration) and
CPU/DRAM energy from a fake RAPL tree."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.device.fake_nvml import FakeBoard, FakeNVML
from tests.device.fake_sysfs import add_uj, make_rapl
from zeus.device.nvml import nvml_gpus
from zeus.device.rapl import rapl_cpus
from zeus.errors import ZeusConfigError
from zeus.monitor import ZeusMonitor


def test_counter_delta_in_joules() -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-a", power_mw=300_000)])
    monitor = ZeusMonitor(gpus=nvml_gpus(pynvml=nvml), cpus=[], sync_execution_with="none")
    monitor.begin_window("w")
    nvml.tick(2.0)
    m = monitor.end_window("w")
    assert m.gpu_energy_j == {0: pytest.approx(600.0)}
    assert m.method == "counter"


def test_window_shorter_than_counter_refresh_is_not_zero() -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-a", power_mw=300_000)])
    monitor = ZeusMonitor(gpus=nvml_gpus(pynvml=nvml), cpus=[], sync_execution_with="none")
    monitor.begin_window("tiny")  # the fake counter does not move: like a refresh not yet due
    m = monitor.end_window("tiny")
    assert m.gpu_energy_j[0] == pytest.approx(300.0 * m.time_s)
    assert m.gpu_energy_j[0] > 0
    assert m.method == "counter+power"


def test_gpu_without_counter_integrates_sampled_power() -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-p100", arch=4, power_mw=150_000)])
    gpus = nvml_gpus(pynvml=nvml)
    monitor = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none", power_interval_s=0.01)
    try:
        monitor.begin_window("w")
        time.sleep(0.1)
        m = monitor.end_window("w")
    finally:
        monitor.close()
    assert m.method == "power_integration"
    assert m.gpu_energy_j[0] == pytest.approx(150.0 * m.time_s, rel=0.01)


def test_mixed_methods_are_labelled() -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-a"), FakeBoard(uuid="GPU-p", arch=4)])
    monitor = ZeusMonitor(gpus=nvml_gpus(pynvml=nvml), cpus=[], sync_execution_with="none")
    try:
        monitor.begin_window("w")
        nvml.tick(1.0)
        m = monitor.end_window("w")
    finally:
        monitor.close()
    assert m.method == "mixed(counter,power_integration)"


def test_cpu_and_dram_energy_from_rapl(tmp_path: Path) -> None:
    root = make_rapl(tmp_path / "powercap")
    monitor = ZeusMonitor(
        gpus=[], cpus=rapl_cpus(root), cpu_indices=[1], sync_execution_with="none"
    )
    monitor.begin_window("w")
    add_uj(root / "intel-rapl:1", 7_000_000)
    add_uj(root / "intel-rapl:1" / "intel-rapl:1:1", 2_000_000)
    add_uj(root / "intel-rapl:0", 99_000_000)  # not monitored
    m = monitor.end_window("w")
    assert m.cpu_energy_j == {1: pytest.approx(7.0)}
    assert m.dram_energy_j == {1: pytest.approx(2.0)}
    assert m.gpu_energy_j == {} and m.method == "none"


def test_missing_cpu_index(tmp_path: Path) -> None:
    with pytest.raises(
        ZeusConfigError, match=r"CPU index 4 does not exist; allowed indices: 0\.\.1"
    ):
        ZeusMonitor(gpus=[], cpus=rapl_cpus(make_rapl(tmp_path)), cpu_indices=[4])
