"""ZeusMonitor on replay GPUs: energy against the analytic value, windows, sync, errors."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from zeus.device.replay import ReplayGPU
from zeus.errors import GPUNotFoundError, ZeusConfigError
from zeus.monitor import Measurement, ZeusMonitor


def _replay(tmp_path: Path, n: int = 1, profile: str = "a40-resnet50") -> list[ReplayGPU]:
    return [ReplayGPU(profile, index=i, state_dir=tmp_path) for i in range(n)]


def test_energy_is_the_profile_power_over_the_marked_steps(tmp_path: Path) -> None:
    gpus = _replay(tmp_path, 2, "a40-resnet50-x4")
    gpus[0].set_power_limit_w(200)
    monitor = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none")
    monitor.begin_window("train")
    for _ in range(10):
        monitor.step(64)
        time.sleep(0.001)  # CPU time between steps does not count
    m = monitor.end_window("train")
    profile = gpus[0].profile
    step_s = [profile.at(None, 200).step_time_s, profile.at(None, 300).step_time_s]
    assert m.time_s == pytest.approx(10 * max(step_s))  # the slowest GPU sets the window
    for i in (0, 1):
        power_w = profile.at(None, (200, 300)[i], gpu=i).power_w
        assert m.gpu_energy_j[i] == pytest.approx(10 * step_s[i] * power_w)
    assert m.total_energy_j == pytest.approx(sum(m.gpu_energy_j.values()))
    assert m.method == "replay:counter"
    assert m.cpu_energy_j is None and m.dram_energy_j is None


def test_throttled_limit_lengthens_window_time(tmp_path: Path) -> None:
    (gpu,) = _replay(tmp_path)
    monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none")
    times = {}
    for limit_w in (300, 100):
        gpu.set_power_limit_w(limit_w)
        with monitor.window(f"at-{limit_w}") as w:
            for _ in range(5):
                monitor.step()
        assert w.measurement is not None
        times[limit_w] = w.measurement.time_s
    profile = gpu.profile
    slowdown = profile.at(None, 100).step_time_s / profile.at(None, 300).step_time_s
    assert times[100] / times[300] == pytest.approx(slowdown)


def test_step_splits_the_batch_over_the_monitored_gpus(tmp_path: Path) -> None:
    gpus = _replay(tmp_path, 2, "a40-imagenet-resnet50")
    monitor = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none")
    with monitor.window("dp") as w:
        monitor.step(128)  # 64 samples on each GPU
        monitor.step(128, forward_only=True)
    assert w.measurement is not None
    per_gpu = gpus[0].profile.at(64, 300)
    assert w.measurement.time_s == pytest.approx(per_gpu.step_time_s * (1 + 1 / 3))


def test_overlapping_and_nested_windows(tmp_path: Path) -> None:
    monitor = ZeusMonitor(gpus=_replay(tmp_path), cpus=[], sync_execution_with="none")
    monitor.begin_window("epoch")
    monitor.begin_window("a")
    monitor.step()
    monitor.begin_window("b")
    a = monitor.end_window("a")
    monitor.step()
    b = monitor.end_window("b")
    epoch = monitor.end_window("epoch")
    assert epoch.time_s == pytest.approx(a.time_s + b.time_s) and a.time_s == b.time_s > 0
    assert epoch.gpu_energy_j[0] == pytest.approx(a.gpu_energy_j[0] + b.gpu_energy_j[0])
    assert monitor.open_windows == []


def test_context_manager_sets_measurement(tmp_path: Path) -> None:
    monitor = ZeusMonitor(gpus=_replay(tmp_path), cpus=[], sync_execution_with="none")
    with monitor.window("eval") as w:
        assert w.measurement is None
        monitor.step(forward_only=True)
    assert isinstance(w.measurement, Measurement)
    assert w.measurement.gpu_energy_j[0] > 0


def test_a_window_without_steps_is_zero_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Arbitrary code around no training step: replay time does not move. 0 s, 0 J, a method that
    says so, and one warning per monitor, not silence."""
    monitor = ZeusMonitor(gpus=_replay(tmp_path), cpus=[], sync_execution_with="none")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            with monitor.window("idle") as w:
                time.sleep(0.01)
            assert w.measurement is not None
            assert (w.measurement.time_s, w.measurement.total_energy_j) == (0.0, 0.0)
            assert w.measurement.method == "replay:no-steps"
    warnings = [r.getMessage() for r in caplog.records if "no training step" in r.getMessage()]
    assert len(warnings) == 1 and "monitor.step()" in warnings[0]


def test_virtual_and_wall_time_gpus_do_not_mix(tmp_path: Path) -> None:
    virtual = ReplayGPU("a40-resnet50", state_dir=tmp_path)
    wall = ReplayGPU("a40-resnet50", index=1, state_dir=tmp_path, clock="wall")
    with pytest.raises(ZeusConfigError, match="mix virtual-time"):
        ZeusMonitor(gpus=[virtual, wall], cpus=[], sync_execution_with="none")


def test_wall_clock_replay_window_is_wall_time(tmp_path: Path) -> None:
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path, clock="wall")
    monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none")
    start = time.monotonic()
    with monitor.window("w") as w:
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    assert w.measurement is not None
    assert 0.05 <= w.measurement.time_s <= elapsed
    assert w.measurement.gpu_energy_j[0] == pytest.approx(
        gpu.power_w() * w.measurement.time_s, rel=0.05
    )
    assert w.measurement.method == "replay:counter"


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
        monitor.step()
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


def test_replay_window_power_is_the_profile_power(tmp_path: Path) -> None:
    (gpu,) = _replay(tmp_path, profile="v100-resnet50")
    gpu.set_power_limit_w(175)
    monitor = ZeusMonitor(gpus=[gpu], cpus=[], sync_execution_with="none")
    for _ in range(5):
        with monitor.window("short") as w:
            monitor.step()
        assert w.measurement is not None and w.measurement.time_s > 0
        assert w.measurement.gpu_energy_j[0] / w.measurement.time_s == pytest.approx(
            gpu.power_w(), rel=1e-9
        )
