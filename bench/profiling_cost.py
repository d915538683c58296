"""Profiling cost of the power-limit search strategies on every shipped profile.

For each profile (the per-window logs in ``zeus/data/profiles`` and every (workload, batch size,
optimizer) of the ``summary_power_*.csv`` traces) and each strategy, it replays the search on the
measured data and prints the steps spent profiling (``warmup_steps + profile_steps`` per measured
limit, with the optimizer's defaults) and the cost gap: how much worse, by the selector's own score,
the chosen limit is than the exhaustive sweep's choice. Steps are for the default selector
(``ZeusCost(0.5)``); the gap is the worst over every selector configuration (Energy, Time, ZeusCost
with eta in steps of 0.05, MaxSlowdownConstraint 1.0-2.0).

    python bench/profiling_cost.py            # per-profile table and summary
    python bench/profiling_cost.py --summary  # summary only
"""

from __future__ import annotations

import argparse

from zeus.optimizer.power_limit import ZeusCost
from zeus.optimizer.power_limit.search import DEFAULT_SEARCH, STRATEGIES, get_search
from zeus.optimizer.power_limit.shipped import selector_grid, shipped_profiles, simulate_search

STEPS_PER_LIMIT = 10 + 40  # the optimizer's default warmup_steps + profile_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--summary", action="store_true", help="print only the summary")
    args = parser.parse_args()

    names = list(STRATEGIES)
    strategies = {name: get_search(name) for name in names}
    grid = selector_grid()
    default_selector = ZeusCost(0.5)
    totals = {
        name: dict.fromkeys(("steps", "sweep", "pairs", "over", "worst"), 0.0) for name in names
    }

    header = f"{'profile':58s} {'limits':>6s}" + "".join(
        f" {name + ' steps':>17s} {'worst gap':>9s}" for name in names
    )
    if not args.summary:
        print(header)
    for profile in shipped_profiles():
        row = f"{profile.name:58s} {len(profile.measurements):6d}"
        for name, strategy in strategies.items():
            steps = simulate_search(strategy, profile, default_selector).measured * STEPS_PER_LIMIT
            outcomes = [simulate_search(strategy, profile, selector) for _, selector in grid]
            gaps = [outcome.cost_gap for outcome in outcomes]
            totals[name]["steps"] += sum(outcome.measured for outcome in outcomes)
            totals[name]["sweep"] += sum(outcome.candidates for outcome in outcomes)
            totals[name]["pairs"] += len(gaps)
            totals[name]["over"] += sum(gap > 0.01 for gap in gaps)
            totals[name]["worst"] = max(totals[name]["worst"], max(gaps))
            row += f" {steps:17d} {max(gaps) * 100:8.2f}%"
        if not args.summary:
            print(row)

    print()
    print(f"{len(shipped_profiles())} profiles x {len(grid)} selector configurations")
    print(f"{'strategy':22s} {'steps vs exhaustive':>20s} {'worst gap':>10s} {'pairs > 1%':>12s}")
    for name in names:
        t = totals[name]
        ratio = t["steps"] / t["sweep"]
        label = name + (" (default)" if name == DEFAULT_SEARCH else "")
        over = f"{int(t['over'])}/{int(t['pairs'])}"
        print(f"{label:22s} {ratio * 100:19.1f}% {t['worst'] * 100:9.2f}% {over:>12s}")


if __name__ == "__main__":
    main()
