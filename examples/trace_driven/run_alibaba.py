"""Simulate Alibaba-style groups of overlapping recurring jobs (the original example's flags).

    python examples/trace_driven/run_alibaba.py --dataset squad --gpu v100 --seed 1
    python examples/trace_driven/run_alibaba.py --group_trace my_groups.csv.xz --gpu a40

Without ``--group_trace`` (columns: group, start_time, end_time, dataset, runtime_ratio) it
generates ``--num_groups`` synthetic groups of ``--dataset`` (see docs/simulator.md).
"""

from __future__ import annotations

import argparse
import sys

from zeus.errors import ZeusConfigError, ZeusError
from zeus.policy import JITPowerLimitOptimizer, PruningGTSBatchSizeOptimizer
from zeus.simulate import Simulator
from zeus.simulate.groups import generate_groups, load_group_trace
from zeus.simulate.runs import make_job, summarize_group


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="squad")
    p.add_argument("--model", default=None)
    p.add_argument("--optimizer", default=None)
    p.add_argument("--target_metric", type=float, default=None)
    p.add_argument("--max_epochs", type=int, default=None)
    p.add_argument("--b_0", type=int, default=None)
    p.add_argument("--gpu", default="v100")
    p.add_argument("--eta_knob", type=float, default=0.5)
    p.add_argument("--beta_knob", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--group_trace", default=None, help="CSV (.gz/.xz) of groups; default: generated"
    )
    p.add_argument("--num_groups", type=int, default=3)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    job = make_job(
        args.dataset, args.model, args.optimizer, args.target_metric, args.max_epochs, args.b_0
    )
    if args.group_trace:
        groups = [g for g in load_group_trace(args.group_trace) if g.dataset == job.dataset]
        if not groups:
            raise ZeusConfigError(f"{args.group_trace} has no group of dataset {job.dataset}")
    else:
        groups = generate_groups([job.dataset], args.num_groups, args.seed)
    for group in groups:
        simulator = Simulator(
            None,
            args.gpu,
            PruningGTSBatchSizeOptimizer(seed=args.seed),
            JITPowerLimitOptimizer(),
            args.seed,
        )
        history = simulator.simulate_one_alibaba_group(job, group, args.beta_knob, args.eta_knob)
        s = summarize_group(simulator.table(job), group, history, args.eta_knob)
        print(f"{s.group}: {s.jobs} jobs, {s.runs} runs ({s.concurrent_runs} concurrent, {s.failed_runs} failed); "
              f"energy saved {s.energy_saving:.1%}, time change {s.time_change:+.1%}")  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except ZeusError as e:  # bad input: one clear line, no traceback
        sys.exit(f"error: {e}")
