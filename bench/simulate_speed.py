"""Speed of the simulator: `zeus simulate sweep` over all 24 cells x 10 seeds, wall clock.

Usage: python bench/simulate_speed.py
With the paper's policy (what the original simulated), prints the wall time of the whole CLI command
(process start, imports, parallel workers, table), the CPU time of the same 240 simulations in one
process, and the mean cost of one recurrence; then the CPU time of the same simulations with the
default batch-size policy. The reference figure: the original simulator took about 300 s of CPU for
the 240 simulations.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from zeus.policy import DEFAULT_POLICY
from zeus.simulate.sweep import run_sweep, tasks
from zeus.simulate.traces import GPUS, WORKLOADS

ZEUS = Path(sys.executable).with_name("zeus")


def main() -> None:
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run")
    start = time.perf_counter()
    subprocess.run(
        [str(ZEUS), "simulate", "sweep", "--seeds", "10", "--policy", "pruning-gts"],
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    print(f"zeus simulate sweep (24 cells x 10 seeds): {wall:.2f} s wall (target < 5 s)")
    todo = tasks(WORKLOADS, GPUS, range(1, 11), "pruning-gts")
    cpu0 = time.process_time()
    results = run_sweep(todo, processes=1)
    cpu = time.process_time() - cpu0
    recs = sum(r.metrics.num_recurrence for r in results)
    print(
        f"in one process: {cpu:.2f} s CPU for {len(results)} simulations, {recs} recurrences, "
        f"{1e6 * cpu / recs:.0f} us per recurrence (all included); "
        f"{300 / cpu:.0f}x less CPU than the original's ~300 s"
    )
    todo = tasks(WORKLOADS, GPUS, range(1, 11), DEFAULT_POLICY)
    cpu0 = time.process_time()
    results = run_sweep(todo, processes=1)
    default_cpu = time.process_time() - cpu0
    print(
        f"with the default policy ({DEFAULT_POLICY}): {default_cpu:.2f} s CPU, "
        f"{default_cpu / cpu:.1f}x the paper's policy"
    )


if __name__ == "__main__":
    main()
