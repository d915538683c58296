"""ZeusMonitor on replay GPUs: energy against the analytic value, windows, sync, errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from zeus.device.replay import ReplayGPU
from zeus.errors import GPUNotFoundError, ZeusConfigError
from zeus.monitor import Measurement, ZeusMonitor


def _replay(tmp_path: Path, n: int = 1, profile: str = "a40-resnet50") -> list[ReplayGPU]:
    return [ReplayGPU(profile, index=i, state_dir=tmp_path) for i in range(n)]


def test_energy_within_one_percent_of_analytic(tmp_path: Path) -> None:
    gpus = _replay(tmp_path, 2, "a40-resnet50-x4")
    gpus[0].set_power_limit_w(200)
    monitor = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none")
    monitor.begin_window("train")
    time.sleep(0.3)
    m = monitor.end_window("train")
    for i, gpu in enumerate(gpus):
        analytic_j = gpu.power_w() * m.time_s
        assert m.gpu_energy_j[i] == pytest.approx(analytic_j, rel=0.01)
    assert m.total_energy_j == pytest.approx(sum(m.gpu_energy_j.values()))
    assert m.method == "replay:counter"
    assert m.cpu_energy_j is None and m.dram_energy_j is None


def test_throttled_limit_stretches_window_time(tmp_path: Path) -> None:
    (gpu,) = _replay(tmp_path)
    gpu.set_power_limit_w(100)
    monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none")
    monitor.begin_window("step")
    time.sleep(0.05)
    m = monitor.end_window("step")
    assert m.time_s >= 0.05 * gpu.rel_step_time() * 0.99


def test_overlapping_and_nested_windows(tmp_path: Path) -> None:
    monitor = ZeusMonitor(gpus=_replay(tmp_path), cpus=[], sync_execution_with="none")
    monitor.begin_window("epoch")
    monitor.begin_window("a")
    time.sleep(0.02)
    monitor.begin_window("b")
    a = monitor.end_window("a")
    time.sleep(0.02)
    b = monitor.end_window("b")
    epoch = monitor.end_window("epoch")
    assert epoch.time_s >= a.time_s and epoch.time_s >= b.time_s
    assert epoch.gpu_energy_j[0] > a.gpu_energy_j[0]
    assert monitor.open_windows == []


def test_context_manager_sets_measurement(tmp_path: Path) -> None:
    monitor = ZeusMonitor(gpus=_replay(tmp_path), cpus=[], sync_execution_with="none")
    with monitor.window("eval") as w:
        assert w.measurement is None
        time.sleep(0.01)
    assert isinstance(w.measurement, Measurement)
    assert w.measurement.gpu_energy_j[0] > 0


def test_context_manager_closes_window_on_error(tmp_path: Path) -> None:
    monitor = ZeusMonitor(gpus=_replay(tmp_path), cpus=[], sync_execution_with="none")
    with pytest.raises(RuntimeError), monitor.window("boom"):
        raise RuntimeError("training crashed")
    assert monitor.open_windows == []


def test_window_opened_twice_or_closed_unopened(tmp_path: Path) -> None:
    monitor = ZeusMonitor(gpus=_replay(tmp_path), cpus=[], sync_execution_with="none")
    monitor.begin_window("w")
    with pytest.raises(ZeusConfigError, match="'w' is already open"):
        monitor.begin_window("w")
    monitor.end_window("w")
    with pytest.raises(ZeusConfigError, match="'w' is not open"):
        monitor.end_window("w")
    with pytest.raises(ZeusConfigError, match="'never' is not open"):
        monitor.end_window("never")


def test_gpu_indices_index_into_explicit_gpus(tmp_path: Path) -> None:
    gpus = _replay(tmp_path, 3, "v100-resnet50")
    monitor = ZeusMonitor(gpu_indices=[2, 0], gpus=gpus, cpus=[], sync_execution_with="none")
    assert monitor.gpus == [gpus[2], gpus[0]]
    with monitor.window("x") as w:
        pass
    assert w.measurement is not None and set(w.measurement.gpu_energy_j) == {0, 2}
    with pytest.raises(GPUNotFoundError, match=r"0\.\.2"):
        ZeusMonitor(gpu_indices=[3], gpus=gpus, cpus=[], sync_execution_with="none")


def test_default_gpus_come_from_zeus_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEUS_GPU", "replay:v100-bert-base-uncased:2")
    monitor = ZeusMonitor(cpus=[], sync_execution_with="none")
    assert [g.index for g in monitor.gpus] == [0, 1]
    assert monitor.gpu_indices == [0, 1]


def test_sync_callable_is_called_at_both_edges(tmp_path: Path) -> None:
    calls: list[str] = []
    monitor = ZeusMonitor(
        gpus=_replay(tmp_path), cpus=[], sync_execution_with=lambda: calls.append("s")
    )
    monitor.begin_window("w")
    monitor.end_window("w")
    monitor.begin_window("nosync", sync_execution=False)
    monitor.end_window("nosync", sync_execution=False)
    assert calls == ["s", "s"]


def test_unknown_sync_framework(tmp_path: Path) -> None:
    with pytest.raises(ZeusConfigError, match="torch, jax, cupy, none"):
        ZeusMonitor(gpus=_replay(tmp_path), cpus=[], sync_execution_with="tensorflow")


def test_torch_sync_without_cuda_is_harmless(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    monitor = ZeusMonitor(gpus=_replay(tmp_path), cpus=[], sync_execution_with="torch")
    with monitor.window("w") as w:
        pass
    assert w.measurement is not None


def test_replay_window_time_and_energy_cover_the_same_interval(tmp_path: Path) -> None:
    # The replay GPU stamps its counter readings, so even a window interrupted between reads
    # (a busy machine) reports exactly the profile's power: energy / time == power at the limit.
    (gpu,) = _replay(tmp_path, profile="v100-resnet50")
    gpu.set_power_limit_w(175)
    monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none")
    for _ in range(20):
        with monitor.window("short") as w:
            pass
        assert w.measurement is not None and w.measurement.time_s > 0
        assert w.measurement.gpu_energy_j[0] / w.measurement.time_s == pytest.approx(
            gpu.power_w(), rel=1e-6
        )
