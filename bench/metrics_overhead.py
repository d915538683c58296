"""Cost of metrics: the node agent's CPU while it samples 8 replay GPUs for Prometheus, and the
library exporter's cost per measurement window.

Run: ``.venv/bin/python bench/metrics_overhead.py [--seconds 30]`` (starts agents of its own on UNIX
sockets in a temporary folder; no hardware, no root). Prints figures, not pass/fail.

* **agent CPU**: `zeus agent --gpu replay:<profile>:8:wall` for ``--seconds`` with metrics off,
  then sampling every 1 s and every 0.1 s, with one scrape of ``/metrics`` per second as Prometheus
  would at a 1 s scrape interval. Wall-clock replay GPUs draw power all the time, like hardware, so
  every sample moves the energy totals and saves them (with fsync). CPU time (user + system, from
  ``/proc/<pid>/stat``) over wall time, as a share of one core; the difference to metrics off is
  what sampling, saving the totals and answering scrapes cost. Target: under 1% of a core at 1 Hz.
* **exporter**: `PrometheusExporter.observe_window` on a finished window of 1 and 8 GPUs, pull
  mode (push mode only adds a push every ``push_interval_s``); and one scrape of the agent's page.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from zeus.monitor import PrometheusExporter
from zeus.monitor.energy import Measurement

PROFILE = "a40-imagenet-resnet50"
GPUS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def agent(folder: Path, interval_s: float | None) -> Iterator[tuple[int, int | None]]:
    """`zeus agent` on 8 replay GPUs; its pid and metrics port (None: metrics off)."""
    zeus = str(Path(sys.executable).parent / "zeus")
    port = _free_port() if interval_s is not None else None
    command = [zeus, "agent", "--gpu", f"replay:{PROFILE}:{GPUS}:wall"]
    command += ["--socket", str(folder / "agent.sock"), "--state-dir", str(folder / "state")]
    command += ["--log-level", "warning"]
    if interval_s is not None:
        command += ["--metrics-port", str(port), "--metrics-interval-s", str(interval_s)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (folder / "agent.sock").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("zeus agent did not start")
            time.sleep(0.05)
        time.sleep(2.0)  # imports and start-up are not what is measured
        yield process.pid, port
    finally:
        process.terminate()
        process.wait(20)


def agent_cpu_share(interval_s: float | None, seconds: float) -> float:
    with (
        tempfile.TemporaryDirectory(prefix="zeus-", dir="/tmp") as tmp,
        agent(Path(tmp), interval_s) as (pid, port),
    ):
        start_cpu, start = _cpu_s(pid), time.monotonic()
        with httpx.Client() as client:
            while time.monotonic() - start < seconds:
                if port is not None:
                    client.get(f"http://127.0.0.1:{port}/metrics").raise_for_status()
                time.sleep(1.0)
        return (_cpu_s(pid) - start_cpu) / (time.monotonic() - start)


def observe_window_us(gpus: int, windows: int) -> list[float]:
    exporter = PrometheusExporter("bench", port=0)
    measurement = Measurement(
        time_s=1.0,
        gpu_energy_j={i: 100.0 for i in range(gpus)},
        cpu_energy_j=None,
        dram_energy_j=None,
        method="counter",
    )
    costs = []
    try:
        for n in range(windows):
            start = time.perf_counter()
            exporter.observe_window(f"zeus-dataloader-epoch-{n}", measurement)
            costs.append((time.perf_counter() - start) * 1e6)
    finally:
        exporter.close()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per agent configuration")
    parser.add_argument("--windows", type=int, default=20_000)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.1f} ({os.cpu_count()} cores)")
    for gpus in (1, GPUS):
        costs = observe_window_us(gpus, args.windows)
        print(
            f"exporter, one finished window of {gpus} GPU(s): median "
            f"{statistics.median(costs):5.1f} µs  p90 {statistics.quantiles(costs, n=10)[-1]:5.1f} µs"
        )
    off = agent_cpu_share(None, args.seconds)
    print(f"agent, {GPUS} replay GPUs, metrics off:           {off * 100:6.3f}% of a core")
    for hz in (1, 10):
        share = agent_cpu_share(1.0 / hz, args.seconds)
        print(
            f"agent, {GPUS} replay GPUs, sampling at {hz:>2} Hz:     {share * 100:6.3f}% of a core "
            f"({(share - off) * 100:+.3f} points for metrics, 1 scrape/s included)"
        )


if __name__ == "__main__":
    main()
