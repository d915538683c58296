"""Cost of the node agent: a begin_window+end_window pair and a marked step, through `zeus agent`
and directly on a replay GPU of the process's own, in the same run.

Run: ``.venv/bin/python bench/agent_overhead.py`` (starts two agents of its own on UNIX sockets in a
temporary folder; no hardware, no root needed). Prints figures, not pass/fail. Target: a window pair
through the agent under 300 µs (median).

* **virtual time** (``replay:<profile>``): the job holds the lease, and every reading it needs comes
  back with its own steps, so a window pair sends no request; each marked step is one request.
* **wall time** (``replay:<profile>:wall``, which the agent serves like NVML hardware): each window
  edge reads the energy counter through the agent (one request per edge); steps send nothing.
* **a request** on its own: ``GET /gpus/0/readings``, the floor of anything that asks the agent.
* **restore after SIGKILL**: a job leases a GPU, sets a limit and is killed; the time until the
  agent has put the original limit back (the agent checks holders every 0.25 s by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from zeus.device.agent import agent_gpus, client_for, disconnect
from zeus.device.base import GPU
from zeus.device.replay import ReplayGPU
from zeus.monitor import ZeusMonitor

PROFILE = "a40-imagenet-resnet50"


@contextmanager
def agent(folder: Path, gpu: str) -> Iterator[tuple[str, int]]:
    """`zeus agent` serving ``gpu`` in a subprocess; its socket path and pid."""
    folder.mkdir()
    socket_path = str(folder / "agent.sock")
    zeus = str(Path(sys.executable).parent / "zeus")
    command = [zeus, "agent", "--gpu", gpu, "--socket", socket_path]
    command += ["--state-dir", str(folder / "state"), "--log-level", "warning"]
    env = {**os.environ, "ZEUS_STATE_DIR": str(folder / "replay")}
    with open(folder / "agent.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(socket_path):  # it listens once the file exists
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"zeus agent did not start:\n{(folder / 'agent.log').read_text()}")
            time.sleep(0.05)
        yield socket_path, process.pid
    finally:
        process.terminate()
        process.wait(30)


def window_pair_us(gpus: list[GPU], pairs: int) -> list[float]:
    """The cost of begin_window + end_window, a step marked inside each window (not timed)."""
    monitor = ZeusMonitor(gpus=gpus, cpus=[], sync_execution_with="none")
    monitor.step(32)  # takes the lease on the agent's GPU before timing
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


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_call_us(pid: int, action: Callable[[], object], times: int) -> tuple[float, float]:
    """CPU per call of the agent process and of this one, in µs: steadier than wall time on a
    busy machine, where waiting for the other process to be scheduled dominates."""
    agent_start, own_start = cpu_s(pid), time.process_time()
    for _ in range(times):
        action()
    return (
        (cpu_s(pid) - agent_start) / times * 1e6,
        (time.process_time() - own_start) / times * 1e6,
    )


def each_us(action: Callable[[], object], times: int) -> list[float]:
    costs = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        costs.append((time.perf_counter() - start) * 1e6)
    return costs


HOLDER = """
import sys, time
from zeus.device import get_gpus
(gpu,) = get_gpus([0], backend="agent:" + sys.argv[1])
gpu.set_power_limit_w(150)
print("set", flush=True)
time.sleep(600)
"""


def restore_after_kill_ms(socket_path: str, times: int) -> list[float]:
    """Milliseconds from a holder's SIGKILL to its GPU's original limit being back."""
    client = client_for(socket_path)
    costs = []
    for _ in range(times):
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, socket_path], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline() == "set\n"
        holder.kill()
        killed = time.perf_counter()
        while client.call("GET", "/gpus/0")["power_limit_w"] != 300:
            time.sleep(0.002)
        costs.append((time.perf_counter() - killed) * 1e3)
        holder.wait()
        holder.stdout.close()
    return costs


def show(what: str, costs: list[float], note: str = "") -> float:
    median = statistics.median(costs)
    p90 = statistics.quantiles(costs, n=10)[-1]
    print(f"{what:58} median {median:8.1f} µs  p90 {p90:8.1f} µs{note}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=2000, help="window pairs per case")
    parser.add_argument("--requests", type=int, default=500, help="steps and requests per case")
    parser.add_argument("--kills", type=int, default=10, help="holders killed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zeus-bench-") as tmp:
        root = Path(tmp)
        direct = [ReplayGPU(PROFILE, state_dir=root / "direct")]
        with agent(root / "virtual", f"replay:{PROFILE}") as (virtual_socket, agent_pid):
            served = agent_gpus(virtual_socket)
            print(f"replay GPU {PROFILE}, virtual time, {os.cpu_count()} CPUs:")
            direct_pair = show(
                "  window pair, direct replay GPU", window_pair_us(direct, args.pairs)
            )
            agent_pair = show(
                "  window pair, through the agent",
                window_pair_us(served, args.pairs),  # type: ignore[arg-type]
                "  (target < 300 µs)",
            )
            print(f"  ratio agent/direct: {agent_pair / direct_pair:.2f}")
            direct_step = show(
                "  marked step, direct", each_us(lambda: direct[0].step(32), args.requests)
            )
            agent_step = show(
                "  marked step, through the agent (one request)",
                each_us(lambda: served[0].step(32), args.requests),
            )
            print(f"  ratio agent/direct: {agent_step / direct_step:.0f}")
            agent_cpu, own_cpu = cpu_per_call_us(
                agent_pid, lambda: served[0].step(32), args.requests
            )
            print(
                f"  CPU per marked step: agent {agent_cpu:.0f} µs, training process {own_cpu:.0f} µs"
            )
            client = client_for(virtual_socket)
            show(
                "  a request: GET /gpus/0/readings",
                each_us(lambda: client.call("GET", "/gpus/0/readings"), args.requests),
            )
            disconnect(virtual_socket)  # frees GPU 0 for the holders below
            restores = restore_after_kill_ms(virtual_socket, args.kills)
            print(
                f"  restore after SIGKILL, {len(restores)} jobs: median "
                f"{statistics.median(restores):.0f} ms, max {max(restores):.0f} ms (promise: < 2000 ms)"
            )
        with agent(root / "wall", f"replay:{PROFILE}:wall") as (wall_socket, _):
            print("replay GPU on wall time (served like NVML hardware):")
            direct_wall = [ReplayGPU(PROFILE, state_dir=root / "direct-wall", clock="wall")]
            show("  window pair, direct", window_pair_us(direct_wall, args.requests))  # type: ignore[arg-type]
            show(
                "  window pair, through the agent (a request per edge)",
                window_pair_us(agent_gpus(wall_socket), args.requests),  # type: ignore[arg-type]
            )


if __name__ == "__main__":
    main()
