"""Cost of measuring: a window pair (with and without metrics export), a step, and power sampling.

Run: ``.venv/bin/python bench/monitor_overhead.py`` (replay GPU; no hardware needed). Prints figures,
not pass/fail. Targets: a window pair under 50 µs; sampling CPU time a small fraction of one core.
Window pairs run on virtual-time replay GPUs (one step marked inside each window, not timed);
background sampling runs on a wall-clock replay GPU, since virtual time needs no sampling thread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from zeus.device.replay import ReplayGPU
from zeus.monitor import PowerMonitor, PrometheusExporter, ZeusMonitor


def window_pair_us(
    gpus: list[ReplayGPU], sync: str, pairs: int, exporter: PrometheusExporter | None = None
) -> list[float]:
    monitor = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with=sync, exporter=exporter)
    costs = []
    for _ in range(pairs):
        start = time.perf_counter()
        monitor.begin_window("bench")
        begun = time.perf_counter()
        monitor.step(32)
        ending = time.perf_counter()
        monitor.end_window("bench")
        costs.append((time.perf_counter() - ending + begun - start) * 1e6)
    return costs


def step_us(gpus: list[ReplayGPU], steps: int) -> list[float]:
    """Cost of ``monitor.step()``, which every integration calls once per training step."""
    monitor = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none")
    costs = []
    for _ in range(steps):
        start = time.perf_counter()
        monitor.step(32)
        costs.append((time.perf_counter() - start) * 1e6)
    return costs


def sampling_cpu_fraction(gpus: list[ReplayGPU], interval_s: float, seconds: float) -> float:
    """Process CPU seconds per wall second while the sampler runs and the main thread sleeps."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    with PowerMonitor(gpus, interval_s=interval_s):
        time.sleep(seconds)
    return (time.process_time() - cpu0) / (time.monotonic() - wall0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state_dir:
        for n in (1, 4):
            gpus = [ReplayGPU("a40-resnet50-x4", index=i, state_dir=state_dir) for i in range(n)]
            for sync in ("none", "torch"):
                costs = window_pair_us(gpus, sync, args.pairs)
                print(
                    f"window pair, {n} replay GPU(s), sync={sync:5}: median {statistics.median(costs):6.1f} µs"
                    f"  p90 {statistics.quantiles(costs, n=10)[-1]:6.1f} µs  (target < 50 µs)"
                )
            costs = step_us(gpus, args.pairs)
            print(
                f"monitor.step(), {n} replay GPU(s):     median {statistics.median(costs):6.1f} µs"
                f"  p90 {statistics.quantiles(costs, n=10)[-1]:6.1f} µs"
            )
        exporter = PrometheusExporter("bench", port=0)
        costs = window_pair_us(gpus[:1], "none", args.pairs, exporter)
        exporter.close()
        print(
            f"window pair, 1 replay GPU, Prometheus exporter: median {statistics.median(costs):6.1f} µs"
            f"  p90 {statistics.quantiles(costs, n=10)[-1]:6.1f} µs"
        )
        gpus = [ReplayGPU("a40-resnet50", state_dir=state_dir, clock="wall")]
        idle = sampling_cpu_fraction([], 1.0, args.seconds)
        print(f"baseline (no sampling): {idle * 100:.3f}% of a core")
        for hz in (10, 100):
            fraction = sampling_cpu_fraction(gpus, 1.0 / hz, args.seconds)
            print(
                f"power sampling at {hz:3d} Hz, 1 wall-clock replay GPU: {fraction * 100:.3f}% of a core "
                f"({fraction * 1e3:.2f} ms CPU per s)"
            )


if __name__ == "__main__":
    main()
