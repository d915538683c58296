"""Simulate one recurring job on the published traces (the original Zeus example's flags).

    python examples/trace_driven/run_single.py --dataset cifar100 --gpu v100 --seed 1

Prints the per-recurrence history and the savings against Default. Equivalent to
`zeus simulate single` (which also writes CSV/JSON and plots).
"""

from __future__ import annotations

import argparse
import sys

from zeus.errors import ZeusError
from zeus.policy import JITPowerLimitOptimizer, PruningGTSBatchSizeOptimizer
from zeus.simulate import Simulator
from zeus.simulate.report import metrics, recurrences
from zeus.simulate.runs import make_job


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="cifar100")
    p.add_argument("--model", default=None, help="default: the workload's network")
    p.add_argument("--optimizer", default=None)
    p.add_argument("--target_metric", type=float, default=None)
    p.add_argument("--max_epochs", type=int, default=None)
    p.add_argument("--b_0", type=int, default=None, help="default batch size")
    p.add_argument("--gpu", default="v100", help="a40, p100, rtx6000 or v100")
    p.add_argument("--eta_knob", type=float, default=0.5)
    p.add_argument("--beta_knob", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--num_recurrence", type=int, default=None)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    job = make_job(
        args.dataset, args.model, args.optimizer, args.target_metric, args.max_epochs, args.b_0
    )
    simulator = Simulator(
        None,  # the bundled train trace
        args.gpu,
        PruningGTSBatchSizeOptimizer(seed=args.seed),
        JITPowerLimitOptimizer(),
        seed=args.seed,
    )
    history = simulator.simulate_one_job(job, args.num_recurrence, args.beta_knob, args.eta_knob)
    for n, rec in enumerate(recurrences(history), start=1):
        print(f"recurrence {n:4d}: bs {rec.batch_size:6d}  pl {rec.power_limit:4d} W  "
              f"energy {rec.energy_j:12.0f} J  time {rec.time_s:9.0f} s")  # fmt: skip
    m = metrics(simulator.table(job), history, args.eta_knob)
    print(
        f"energy saved vs Default, last 10: {m.last10_energy_saving:.1%}; all: {m.all_energy_saving:.1%}"
    )
    print(
        f"time change, last 10: {m.last10_time_change:+.1%}; cumulative regret: {m.cum_regret:.2f} Oracle runs"
    )


if __name__ == "__main__":
    try:
        main()
    except ZeusError as e:  # bad input: one clear line, no traceback
        sys.exit(f"error: {e}")
