"""A custom batch-size policy, plugged into the trace-driven simulator and into ZeusMaster.

The policy is epsilon-greedy: it tries every candidate once (the default first, then ascending),
then runs the batch size with the lowest mean cost among those that reached the target, except that
with probability ``epsilon`` it explores a random candidate. It implements
`zeus.policy.BatchSizeOptimizer` (``register_job`` / ``predict`` / ``observe``, plus
``state_dict`` / ``load_state_dict`` so `ZeusMaster` can resume a series exactly).

    python examples/custom_policy.py            # simulator (cifar100 on V100) + 6 real recurrences
    python examples/custom_policy.py --quick    # fewer simulated recurrences, 2 real ones
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from zeus.job import Job
from zeus.policy import (
    BatchSizeOptimizer,
    DefaultBatchSizeOptimizer,
    JITPowerLimitOptimizer,
    LocalSearchTSBatchSizeOptimizer,
    PruningGTSBatchSizeOptimizer,
)


class EpsilonGreedyBatchSizeOptimizer(BatchSizeOptimizer):
    """Each batch size once, then the cheapest converged one; a random one with probability epsilon."""

    def __init__(self, epsilon: float = 0.1, seed: int = 0) -> None:
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)
        self.untried: dict[Job, list[int]] = {}
        self.costs: dict[Job, dict[int, list[float]]] = {}

    def register_job(self, job: Job, batch_sizes: list[int]) -> None:
        if job in self.untried:
            return  # registering again keeps what was learnt
        rest = sorted(b for b in batch_sizes if b != job.default_bs)
        self.untried[job] = [job.default_bs, *rest]
        self.costs[job] = {b: [] for b in batch_sizes}

    def predict(self, job: Job) -> int:
        if self.untried[job]:
            return self.untried[job][0]
        converged = {b: np.mean(c) for b, c in self.costs[job].items() if c}
        if not converged or self.rng.random() < self.epsilon:
            return int(self.rng.choice(list(self.costs[job])))
        return int(min(converged, key=lambda b: converged[b]))

    def observe(
        self, job: Job, batch_size: int, cost: float, converged: bool | None = None
    ) -> None:
        if self.untried[job] and self.untried[job][0] == batch_size:
            self.untried[job].pop(0)
        if converged is not False:
            self.costs[job][batch_size].append(cost)

    # Everything keyed by Job becomes a list: JSON has no object keys but strings.
    def state_dict(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "rng": self.rng.bit_generator.state,
            "jobs": [
                {"name": j.name, "untried": self.untried[j], "costs": list(self.costs[j].items())}
                for j in self.untried
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epsilon = state["epsilon"]
        self.rng.bit_generator.state = state["rng"]
        by_name = {j.name: j for j in self.untried}  # register_job() ran before loading
        for entry in state["jobs"]:
            job = by_name[entry["name"]]
            self.untried[job] = list(entry["untried"])
            self.costs[job] = {int(b): list(c) for b, c in entry["costs"]}


def in_the_simulator(num_recurrence: int) -> None:
    """The simulator runs a custom policy like the built-in ones."""
    from zeus.simulate import Simulator
    from zeus.simulate.report import metrics
    from zeus.simulate.runs import make_job

    job = make_job("cifar100")
    print(f"Simulator: {job.name} on V100, {num_recurrence} recurrences, seed 1")
    for label, policy in (
        ("b0 always, JIT limits", DefaultBatchSizeOptimizer()),
        ("epsilon-greedy (ours)", EpsilonGreedyBatchSizeOptimizer(epsilon=0.1, seed=1)),
        ("pruning + GTS (paper)", PruningGTSBatchSizeOptimizer(seed=1)),
        ("local search + TS (Zeus)", LocalSearchTSBatchSizeOptimizer(seed=1)),
    ):
        sim = Simulator(None, "v100", policy, JITPowerLimitOptimizer(), seed=1)
        history = sim.simulate_one_job(job, num_recurrence)
        m = metrics(sim.table(job), history, 0.5)
        print(
            f"  {label:>24}: energy saved vs Default {m.all_energy_saving:6.1%} (all), "
            f"{m.last10_energy_saving:6.1%} (last 10); regret {m.cum_regret:7.1f} Oracle runs"
        )


def with_zeus_master(num_recurrence: int, out: Path) -> None:
    """Real runs: the demo's digits job on a replay GPU (or this machine's NVIDIA GPUs)."""
    from zeus.demo.job import DEMO_BATCH_SIZES, DEMO_PROFILE_PARAMS, choose_gpu, demo_job
    from zeus.run import ZeusMaster

    gpu = choose_gpu()
    out.mkdir(parents=True, exist_ok=True)
    print(f"ZeusMaster: {num_recurrence} recurrences of the digits job on {gpu.description}")
    master = ZeusMaster(
        EpsilonGreedyBatchSizeOptimizer(epsilon=0.1, seed=1),
        out,
        profile_params=DEMO_PROFILE_PARAMS,
        env={"ZEUS_GPU": gpu.backend},
    )
    state = master.run(demo_job(out), DEMO_BATCH_SIZES, num_recurrence)
    for run in state.runs:
        print(
            f"  recurrence {run.recurrence} try {run.try_number}: batch size {run.batch_size:4d} "
            f"at {run.power_limit_w} W, {run.epochs} epochs, {run.energy_j:8.1f} J, "
            f"cost {run.cost:8.1f}, {run.status}"
        )


def kept_or_deleted(out: Path | None) -> str:
    """Where the history stays, or that it goes away with its temporary folder."""
    if out is None:
        return "  history and policy state: in a temporary folder, deleted now (--out DIR keeps it)"
    return f"  history and policy state: {out / 'series.json'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, help="run directory (default: a temporary one)")
    args = parser.parse_args()
    in_the_simulator(40 if args.quick else 140)
    with tempfile.TemporaryDirectory() as tmp:
        with_zeus_master(2 if args.quick else 6, args.out or Path(tmp) / "run")
    print(kept_or_deleted(args.out))
    return None


if __name__ == "__main__":
    sys.exit(main())
