"""A batch-size policy against the paper's on all 24 (workload, GPU) cells of the published traces.

Usage: python bench/policy_compare.py [--seeds 101-200] [--eta 0.2,0.5,0.8] [--policy local-search-ts]
                                      [--baseline pruning-gts] [--markdown]

For each eta it simulates every cell over the seeds (beta 2, the paper's recurrence counts) with
Grid Search, the baseline (the paper's pruning + Gaussian Thompson sampling) and the policy, on the
same seeds, and prints per cell the mean cumulative regret (in Oracle runs) and the mean energy saved
over the last 10 recurrences, with Default's regret (b0 at the maximum power limit, never optimized;
it saves 0% by definition) and the regret of never exploring ("b0+JIT": b0 always, power limits
from JIT profiling), the floor of any policy in a cell whose Oracle is b0. Then the three summary
figures the policy is held to:

1. mean over the cells of its cumulative regret / the baseline's (goal <= 0.7);
2. cells where its regret exceeds Default's (goal <= 2; the baseline's count beside it);
3. the largest last-10 energy-saving shortfall against the baseline, in percentage points (goal <= 1).

The policies were tuned on seeds 1-60; the default seeds 101-200 were not used for tuning.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from zeus.policy.registry import canonical_name
from zeus.simulate.report import Metrics
from zeus.simulate.sweep import parse_seeds, run_sweep, seeds_label, tasks
from zeus.simulate.traces import GPUS, WORKLOADS

Cell = tuple[str, str]


@dataclass(frozen=True)
class CellMeans:
    regret: float
    last10: float
    default_regret: float


def sweep_means(
    policy: str, seeds: range, eta: float, processes: int | None
) -> dict[Cell, CellMeans]:
    by_cell: dict[Cell, list[Metrics]] = {}
    for r in run_sweep(tasks(WORKLOADS, GPUS, seeds, policy, eta), processes):
        by_cell.setdefault((r.task.dataset, r.task.gpu), []).append(r.metrics)
    return {
        cell: CellMeans(
            float(np.mean([m.cum_regret for m in ms])),
            float(np.mean([m.last10_energy_saving for m in ms])),
            ms[0].default_cum_regret,
        )
        for cell, ms in by_cell.items()
    }


@dataclass(frozen=True)
class Summary:
    regret_ratio: float
    cells_worse_than_default: list[Cell]
    baseline_cells_worse_than_default: list[Cell]
    max_shortfall_pp: float
    shortfall_cell: Cell

    @property
    def met(self) -> tuple[bool, bool, bool]:
        return (
            self.regret_ratio <= 0.7,
            len(self.cells_worse_than_default) <= 2,
            self.max_shortfall_pp <= 1.0,
        )


def summarize(ours: dict[Cell, CellMeans], base: dict[Cell, CellMeans]) -> Summary:
    shortfall, cell = max((100 * (base[c].last10 - ours[c].last10), c) for c in ours)
    return Summary(
        regret_ratio=float(np.mean([m.regret for m in ours.values()]))
        / float(np.mean([m.regret for m in base.values()])),
        cells_worse_than_default=[c for c, m in ours.items() if m.regret > m.default_regret],
        baseline_cells_worse_than_default=[
            c for c, m in base.items() if m.regret > m.default_regret
        ],
        max_shortfall_pp=shortfall,
        shortfall_cell=cell,
    )


def print_table(
    names: list[str], results: list[dict[Cell, CellMeans]], markdown: bool, title: str
) -> None:
    header = ["workload", "gpu", "Default regret", "b0+JIT regret"]
    for name in names:
        header += [f"{name} regret", f"{name} saved, last 10"]
    rows = []
    for cell in results[-1]:
        default_regret = results[-1][cell].default_regret
        floor = results[0][cell].regret
        row = [cell[0], cell[1], f"{default_regret:.2f}", f"{floor:.2f}"]
        for res in results[1:]:
            flag = " *" if res[cell].regret > default_regret else ""
            row += [f"{res[cell].regret:.2f}{flag}", f"{res[cell].last10:.1%}"]
        rows.append(row)
    print(f"\n{title}")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def cell_names(cells: list[Cell]) -> str:
    return ", ".join(f"{d}/{g}" for d, g in cells) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="101-200", help="count N (1-N) or range A-B")
    parser.add_argument("--eta", default="0.2,0.5,0.8", help="comma-separated eta values")
    parser.add_argument("--policy", default="local-search-ts")
    parser.add_argument("--baseline", default="pruning-gts")
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--markdown", action="store_true", help="tables in Markdown")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    policy, baseline = canonical_name(args.policy), canonical_name(args.baseline)
    names = ["Grid Search", "paper" if baseline == "pruning-gts" else baseline, policy]
    for eta in (float(e) for e in args.eta.split(",")):
        start = time.perf_counter()
        results = [
            sweep_means(p, seeds, eta, args.processes)
            for p in ("default", "grid-search", baseline, policy)
        ]
        elapsed = time.perf_counter() - start
        title = (
            f"eta {eta:g}, beta 2, mean over seeds {seeds_label(seeds)} "
            f"(* = regret above Default's; {elapsed:.0f} s)"
        )
        print_table(names, results, args.markdown, title)
        s = summarize(results[3], results[2])
        ok = ["met" if m else "NOT met" for m in s.met]
        print(
            f"1. mean cumulative regret, {policy} / {baseline}: {s.regret_ratio:.2f} "
            f"(goal <= 0.7: {ok[0]})"
        )
        print(
            f"2. cells with regret above Default's: {len(s.cells_worse_than_default)} "
            f"({cell_names(s.cells_worse_than_default)}); {baseline}: "
            f"{len(s.baseline_cells_worse_than_default)} (goal <= 2: {ok[1]})"
        )
        print(
            f"3. largest last-10 energy-saving shortfall against {baseline}: "
            f"{s.max_shortfall_pp:+.2f} pp ({cell_names([s.shortfall_cell])}) (goal <= 1 pp: {ok[2]})"
        )
        if not s.met[1]:
            floor = [
                c
                for c in s.cells_worse_than_default
                if results[0][c].regret > results[0][c].default_regret
            ]
            print(
                f"   of these, cells where even never exploring (b0+JIT) has regret above Default's: "
                f"{len(floor)} ({cell_names(floor)})"
            )


if __name__ == "__main__":
    main()
