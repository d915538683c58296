"""PowerMonitor: background sampling into a timeline and a CSV that zeus.analyze reads."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from tests.device.fake_nvml import FakeBoard, FakeNVML
from zeus.analyze import energy, read_power_log
from zeus.device.nvml import nvml_gpus
from zeus.device.replay import ReplayGPU, load_profile
from zeus.errors import ZeusConfigError, ZeusDeviceError
from zeus.monitor import PowerMonitor
from zeus.monitor.power import integrate_j


def test_samples_timeline_and_csv(tmp_path: Path) -> None:
    gpus = [
        ReplayGPU("a40-resnet50-x4", index=i, state_dir=tmp_path, clock="wall") for i in range(2)
    ]
    log = tmp_path / "logs" / "power.csv"
    with PowerMonitor(gpus, interval_s=0.01, csv_path=log) as monitor:
        time.sleep(0.15)
    timeline = monitor.timeline()
    assert set(timeline) == {0, 1}
    for gpu in gpus:
        samples = timeline[gpu.index]
        assert len(samples) >= 3  # start, at least one from the thread, stop
        assert all(w == pytest.approx(gpu.power_w()) for _, w in samples)
        assert [t for t, _ in samples] == sorted(t for t, _ in samples)
    with log.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["timestamp_s", "gpu", "power_w"]
    assert len(rows) - 1 == sum(len(s) for s in timeline.values())
    span_s = timeline[0][-1][0] - timeline[0][0][0]
    assert energy(log, gpu=1) == pytest.approx(gpus[1].power_w() * span_s, rel=1e-3)
    assert read_power_log(log)[0][0][1] == pytest.approx(gpus[0].power_w(), abs=1e-3)


def test_energy_between_times(tmp_path: Path) -> None:
    gpu = ReplayGPU("v100-resnet50", state_dir=tmp_path, clock="wall")
    with PowerMonitor([gpu], interval_s=0.01) as monitor:
        time.sleep(0.08)
    samples = monitor.timeline()[0]
    start, end = samples[0][0], samples[-1][0]
    assert monitor.energy_j(start, end)[0] == pytest.approx(gpu.power_w() * (end - start))


def _virtual_run(tmp_path: Path, name: str) -> tuple[dict[int, list[tuple[float, float]]], str]:
    """Steps at two limits under a virtual-time power monitor; the timeline and the CSV text."""
    gpu = ReplayGPU("a40-resnet50", state_dir=tmp_path / name)
    log = tmp_path / f"{name}.csv"
    with PowerMonitor([gpu], interval_s=0.25, csv_path=log) as monitor:
        assert not monitor._thread  # nothing to poll: power is known at every virtual instant
        for limit_w in (300, 150):
            gpu.set_power_limit_w(limit_w)
            for _ in range(4):
                gpu.step()
                time.sleep(0.002)  # wall time between steps changes nothing
    return monitor.timeline(), log.read_text()


def test_virtual_time_samples_the_replay_clock_deterministically(tmp_path: Path) -> None:
    timeline, text = _virtual_run(tmp_path, "first")
    profile = load_profile("a40-resnet50")
    step_300, step_150 = profile.at(None, 300).step_time_s, profile.at(None, 150).step_time_s
    samples = timeline[0]
    times = [t for t, _ in samples]
    assert times == pytest.approx([0.25 * k for k in range(len(times))])
    assert times[-1] <= 4 * step_300 + 4 * step_150 < times[-1] + 0.25
    for t, watts in samples[1:]:
        expected = 300 if t < 4 * step_300 else 150
        assert watts == pytest.approx(profile.at(None, expected).power_w)
    assert _virtual_run(tmp_path, "second") == (timeline, text)
    assert energy(tmp_path / "first.csv") == pytest.approx(  # the CSV rounds to mW
        integrate_j(samples, times[0], times[-1]), rel=1e-5
    )


def test_integrate_holds_edges_and_interpolates() -> None:
    samples = [(0.0, 100.0), (2.0, 200.0)]
    assert integrate_j(samples, 1.0, 2.0) == pytest.approx(175.0)
    assert integrate_j(samples, -1.0, 0.0) == pytest.approx(100.0)  # before the first: held
    assert integrate_j([(5.0, 80.0)], 0.0, 0.5) == pytest.approx(40.0)
    assert integrate_j(samples, 1.0, 1.0) == 0.0


def test_lifecycle_errors(tmp_path: Path) -> None:
    with pytest.raises(ZeusConfigError, match="interval_s must be > 0"):
        PowerMonitor([], interval_s=0)
    monitor = PowerMonitor([ReplayGPU("a40-resnet50", state_dir=tmp_path)], interval_s=0.05)
    monitor.start()
    with pytest.raises(ZeusConfigError, match="already started"):
        monitor.start()
    monitor.stop()
    monitor.stop()
    assert not monitor.running


def test_sampling_failure_is_reported_on_stop() -> None:
    class Flaky(FakeNVML):
        calls = 0

        def nvmlDeviceGetPowerUsage(self, board: FakeBoard) -> int:
            self.calls += 1
            if self.calls > 2:
                raise self.NVMLError(self.NVML_ERROR_UNKNOWN)
            return board.power_mw

    gpus = nvml_gpus(pynvml=Flaky([FakeBoard(uuid="GPU-f")]))
    monitor = PowerMonitor(gpus, interval_s=0.005).start()
    time.sleep(0.1)
    with pytest.raises(ZeusDeviceError, match="power sampling failed"):
        monitor.stop()
