"""Many simulations at once: workloads × GPUs × seeds, in parallel worker processes.

Traces are parsed once in the parent; forked workers inherit them. One task is one (workload, GPU,
seed) so the progress callback ticks evenly.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zeus.errors import ZeusConfigError
from zeus.policy import JITPowerLimitOptimizer
from zeus.policy.registry import (
    DEFAULT_POLICY,
    canonical_name,
    make_batch_size_optimizer,
    policy_class,
)
from zeus.simulate.report import Metrics, metrics
from zeus.simulate.simulator import Simulator, check_knobs
from zeus.simulate.traces import GPUS, load_power_trace, load_train_trace, workload


def parse_seeds(text: str) -> range:
    """``"10"`` -> seeds 1..10; ``"41-60"`` -> seeds 41..60 (both ends included)."""
    first, sep, last = text.strip().partition("-")
    try:
        lo, hi = (int(first), int(last)) if sep else (1, int(first))
    except ValueError:
        raise ZeusConfigError(
            f"--seeds must be a count (10: seeds 1-10) or a range (41-60), got {text!r}"
        ) from None
    if lo < 0 or hi < lo:
        raise ZeusConfigError(
            f"--seeds must be a count >= 1 or a range FIRST-LAST with 0 <= FIRST <= LAST, got {text!r}"
        )
    return range(lo, hi + 1)


def seeds_label(seeds: range) -> str:
    return f"{seeds.start}-{seeds.stop - 1}"


@dataclass(frozen=True)
class Task:
    dataset: str
    gpu: str
    seed: int
    policy: str = DEFAULT_POLICY  # a registered name or module:Class
    eta_knob: float = 0.5
    beta_knob: float = 2.0


@dataclass(frozen=True)
class CellResult:
    task: Task
    metrics: Metrics


def run_task(task: Task) -> CellResult:
    """One simulation of a published workload with its default job, and its metrics."""
    sim = Simulator(
        None,
        task.gpu,
        make_batch_size_optimizer(task.policy, task.seed),
        JITPowerLimitOptimizer(),
        seed=task.seed,
    )
    job = workload(task.dataset).job()
    history = sim.simulate_one_job(job, beta_knob=task.beta_knob, eta_knob=task.eta_knob)
    return CellResult(task, metrics(sim.table(job), history, task.eta_knob))


def tasks(
    datasets: Iterable[str],
    gpus: Iterable[str],
    seeds: Iterable[int],
    policy: str = DEFAULT_POLICY,
    eta_knob: float = 0.5,
    beta_knob: float = 2.0,
) -> list[Task]:
    """Validated tasks (names checked, ``module:Class`` imported, before anything runs)."""
    check_knobs(beta_knob, eta_knob)
    policy = canonical_name(policy)
    policy_class(policy)
    datasets, gpus = list(datasets), list(gpus)
    for d in datasets:
        workload(d)
    for g in gpus:
        if g not in GPUS:
            raise ZeusConfigError(f"unknown GPU {g!r}; valid: {', '.join(GPUS)}")
    return [
        Task(d, g, s, policy, eta_knob, beta_knob) for d in datasets for g in gpus for s in seeds
    ]


def run_sweep(
    todo: list[Task],
    processes: int | None = None,
    on_result: Callable[[CellResult], None] | None = None,
) -> list[CellResult]:
    """Run every task, in ``processes`` workers (default: all CPUs); results in task order."""
    load_train_trace()
    for g in {t.gpu for t in todo}:
        load_power_trace(g)  # parse once; forked workers inherit the caches
    processes = processes or os.cpu_count() or 1
    results: dict[Task, CellResult] = {}
    if processes == 1 or len(todo) == 1:
        for t in todo:
            results[t] = r = run_task(t)
            if on_result:
                on_result(r)
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(processes) as pool:
            for r in pool.imap_unordered(run_task, todo, chunksize=4):
                results[r.task] = r
                if on_result:
                    on_result(r)
    return [results[t] for t in todo]


@dataclass(frozen=True)
class SweepRow:
    """One simulation's metrics as a flat row (the columns of the reference per-seed CSV and more)."""

    gpu: str
    workload: str
    seed: int
    policy: str
    n_recurrence: int
    last10_energy_saving: float
    last10_time_change: float
    all_energy_saving: float
    all_time_change: float
    cum_regret_norm: float
    default_cum_regret_norm: float
    conv_rec: int | None

    @classmethod
    def of(cls, r: CellResult) -> SweepRow:
        m = r.metrics
        return cls(
            r.task.gpu, r.task.dataset, r.task.seed, r.task.policy, m.num_recurrence,
            m.last10_energy_saving, m.last10_time_change, m.all_energy_saving,
            m.all_time_change, m.cum_regret, m.default_cum_regret, m.conv_rec,
        )  # fmt: skip
