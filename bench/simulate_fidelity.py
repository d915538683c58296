"""Fidelity of the simulator against the published simulator, all 24 (workload, GPU) cells.

Usage: python bench/simulate_fidelity.py [--seeds N]   (default 10 seeds: 1..N)
Prints per cell our mean vs the reference mean of "energy saved, last 10" and of cumulative regret,
the allowed gap (4 standard errors of the difference, or 1 pp / 10%), and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import time

from zeus.simulate.fidelity import check_cell
from zeus.simulate.sweep import run_sweep, tasks
from zeus.simulate.traces import GPUS, WORKLOADS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    start = time.perf_counter()
    results = run_sweep(tasks(WORKLOADS, GPUS, range(1, args.seeds + 1), "pruning-gts"))
    elapsed = time.perf_counter() - start
    by_cell: dict[tuple[str, str], list] = {}
    for r in results:
        by_cell.setdefault((r.task.dataset, r.task.gpu), []).append(r.metrics)
    header = f"{'workload':<13} {'gpu':<8} {'energy ours/ref (tol)':>26} {'regret ours/ref (tol)':>26}  verdict"
    print(header)
    passed = 0
    for (dataset, gpu), ms in by_cell.items():
        e, g = check_cell(dataset, gpu, ms)
        ok = e.ok and g.ok
        passed += ok
        print(
            f"{dataset:<13} {gpu:<8} {e.ours:>8.1%} /{e.reference:>6.1%} (±{e.tolerance:4.1%})"
            f"{g.ours:>10.2f} /{g.reference:>6.2f} (±{g.tolerance:5.2f})  "
            f"{'PASS' if ok else 'FAIL' + (' energy' if not e.ok else '') + (' regret' if not g.ok else '')}"
        )
    print(f"{passed}/{len(by_cell)} cells pass; {len(results)} simulations in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
