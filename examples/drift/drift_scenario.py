"""Data drift: windowed bandits follow a shifting optimum.

A synthetic recurring job (sentiment analysis on drifting data) whose cheapest batch size moves from
32 to 128 halfway through the series. Both batch-size policies run twice: Zeus's default
(``local-search-ts``) and the paper's (``pruning-gts``), each keeping every observation per batch
size, or only the last ``--window`` ones.

    python examples/drift/drift_scenario.py --plot drift.png        # full run, 10 seeds
    python examples/drift/drift_scenario.py --quick                 # 3 seeds
"""

from __future__ import annotations

import argparse

import numpy as np

from zeus.policy import make_batch_size_optimizer
from zeus.simulate.drift import DriftScenario, DriftTrace, default_scenario, run_drift_scenario

POLICIES = ("local-search-ts", "pruning-gts")


def compare(scenario: DriftScenario, seeds: list[int], window: int) -> dict[str, list[DriftTrace]]:
    traces: dict[str, list[DriftTrace]] = {}
    for name in POLICIES:
        for label, size in (("unwindowed", 0), (f"window {window}", window)):
            runs = traces.setdefault(f"{name} {label}", [])
            for seed in seeds:
                policy = make_batch_size_optimizer(name, seed, {"window_size": size})
                runs.append(run_drift_scenario(policy, scenario, seed))
    return traces


def plot(scenario: DriftScenario, traces: dict[str, list[DriftTrace]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    x = np.arange(1, scenario.num_recurrence + 1)
    optimum = [scenario.optimum(i) for i in range(scenario.num_recurrence)]
    top.step(x, optimum, where="mid", color="black", lw=2, label="optimum")
    offsets = (-0.225, -0.075, 0.075, 0.225)
    for offset, (label, runs) in zip(offsets, traces.items(), strict=True):
        top.scatter(x + offset, runs[0].batch_sizes, s=12, label=f"{label} (seed {0})")
        bottom.plot(x, np.mean([t.costs for t in runs], axis=0), label=f"{label}, mean over seeds")
    for ax in (top, bottom):
        ax.axvline(scenario.shift_at + 0.5, color="gray", ls="--")
    top.set_yscale("log", base=2)
    top.set_ylabel("batch size")
    top.legend(fontsize=8)
    bottom.set_ylabel("cost per recurrence")
    bottom.set_xlabel("recurrence (data drifts at the dashed line)")
    bottom.legend(fontsize=8)
    fig.suptitle("Windowed vs unwindowed batch-size policies under data drift (synthetic costs)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=5, help="window size of the windowed policy")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 seeds")
    parser.add_argument("--plot", help="write a PNG here")
    args = parser.parse_args()
    scenario = default_scenario()
    seeds = list(range(3 if args.quick else args.seeds))
    traces = compare(scenario, seeds, args.window)
    print(
        f"{scenario.num_recurrence} recurrences, optimum {scenario.optimum(0)} -> "
        f"{scenario.optimum(scenario.shift_at)} at recurrence {scenario.shift_at + 1}; "
        f"{len(seeds)} seeds"
    )
    for label, runs in traces.items():
        before = np.mean([t.share_of_optimum(scenario, 0, scenario.shift_at) for t in runs])
        after = np.mean([t.share_of_optimum(scenario, scenario.shift_at) for t in runs])
        print(
            f"{label:>26}: picks the optimum in {before:5.1%} before, {after:5.1%} after the shift"
        )
    if args.plot:
        plot(scenario, traces, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
