"""High-level entry points behind `zeus simulate` and the examples: one job, one set of groups.

Everything is validated before any simulation runs; results come back as plain dataclasses that
:func:`write_records` stores as CSV or JSON.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from zeus.cost import check_eta
from zeus.errors import ZeusConfigError, check_range
from zeus.job import Job
from zeus.policy import JITPowerLimitOptimizer
from zeus.policy.registry import DEFAULT_POLICY, make_batch_size_optimizer
from zeus.simulate.groups import Group, GroupHistoryEntry
from zeus.simulate.report import (
    Config,
    Metrics,
    default_config,
    expected_config,
    metrics,
    oracle_config,
)
from zeus.simulate.simulator import HistoryEntry, Simulator, check_knobs
from zeus.simulate.traces import WORKLOADS, WorkloadTable, load_train_trace, workload


def make_job(
    dataset: str,
    model: str | None = None,
    optimizer: str | None = None,
    target_metric: float | None = None,
    max_epochs: int | None = None,
    b0: int | None = None,
    train_trace: str | None = None,
) -> Job:
    """A job from the workload table's defaults, overridden field by field.

    A dataset outside the table needs a user train trace and every field.
    """
    if max_epochs is not None:
        check_range("max_epochs", max_epochs, ge=1)
    if b0 is not None:
        check_range("b0", b0, ge=1)
    if dataset in WORKLOADS:
        return workload(dataset).job(
            network=model,
            optimizer=optimizer,
            target_metric=target_metric,
            max_epochs=max_epochs,
            default_bs=b0,
        )
    given = (model, optimizer, target_metric, max_epochs, b0)
    if train_trace is None or any(v is None for v in given):
        raise ZeusConfigError(
            f"unknown dataset {dataset!r}; valid: {', '.join(WORKLOADS)} (another dataset needs "
            f"a train trace and --model, --optimizer, --target-metric, --max-epochs and --b0)"
        )
    assert model and optimizer and target_metric is not None and max_epochs and b0
    return Job(dataset, model, optimizer, target_metric, max_epochs, b0)


@dataclass(frozen=True)
class SingleResult:
    table: WorkloadTable
    history: list[HistoryEntry]
    metrics: Metrics
    default: Config
    oracle: Config
    chosen: Config  # the configuration of the last recurrence


def simulate_single(
    job: Job,
    gpu: str,
    *,
    policy: str = DEFAULT_POLICY,
    seed: int = 1,
    eta_knob: float = 0.5,
    beta_knob: float = 2.0,
    num_recurrence: int | None = None,
    train_trace: str | None = None,
) -> SingleResult:
    """One recurring job on one GPU with a policy (registered name or ``module:Class``), and what
    a user reads off it."""
    check_knobs(beta_knob, eta_knob, num_recurrence)
    bso = make_batch_size_optimizer(policy, seed)
    sim = Simulator(load_train_trace(train_trace), gpu, bso, JITPowerLimitOptimizer(), seed)
    table = sim.table(job)  # validates the job before anything runs
    history = sim.simulate_one_job(job, num_recurrence, beta_knob, eta_knob)
    return SingleResult(
        table,
        history,
        metrics(table, history, eta_knob),
        default_config(table, eta_knob),
        oracle_config(table, eta_knob),
        expected_config(table, history[-1].batch_size, history[-1].power_limit, eta_knob),
    )


@dataclass(frozen=True)
class GroupSummary:
    """One group against running every job at Default (b0, max limit), scaled by its ratio."""

    group: str
    dataset: str
    jobs: int
    runs: int
    concurrent_runs: int
    failed_runs: int
    energy_j: float
    time_s: float
    energy_saving: float
    time_change: float


def summarize_group(
    table: WorkloadTable, group: Group, history: list[GroupHistoryEntry], eta_knob: float
) -> GroupSummary:
    check_eta(eta_knob)
    default = default_config(table, eta_knob)
    ratio = sum(j.runtime_ratio for j in group.jobs)
    energy = sum(e.energy_j for e in history)
    time = sum(e.time_s for e in history)
    return GroupSummary(
        group=group.name,
        dataset=group.dataset,
        jobs=len(group.jobs),
        runs=len(history),
        concurrent_runs=sum(e.concurrent for e in history),
        failed_runs=sum(not e.reached for e in history),
        energy_j=energy,
        time_s=time,
        energy_saving=1 - energy / (ratio * default.energy_j),
        time_change=time / (ratio * default.time_s) - 1,
    )


def write_records(
    records: Sequence[Any], path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Dataclass records as CSV (one row each) or JSON (``{"records": [...], **extra}``) by suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) for r in records]
    if path.suffix == ".json":
        path.write_text(json.dumps({**(extra or {}), "records": rows}, indent=1) + "\n")
    elif path.suffix == ".csv":
        names = [f.name for f in fields(records[0])] if records else []
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise ZeusConfigError(f"--out must end in .csv or .json, got {path.name}")
    return path


def simulate_groups(
    groups: Sequence[Group],
    gpu: str,
    *,
    policy: str = DEFAULT_POLICY,
    seed: int = 1,
    eta_knob: float = 0.5,
    beta_knob: float = 2.0,
) -> list[tuple[GroupSummary, list[GroupHistoryEntry]]]:
    """Each group with the default job of its workload and a fresh policy seeded with ``seed``."""
    check_knobs(beta_knob, eta_knob)
    jobs = {g.dataset: workload(g.dataset).job() for g in groups}
    sims = {
        d: Simulator(
            None, gpu, make_batch_size_optimizer(policy, seed), JITPowerLimitOptimizer(), seed
        )
        for d in jobs
    }
    for d, job in jobs.items():
        sims[d].table(job)  # validate every workload on this GPU before simulating
    out = []
    for g in groups:
        sim, job = sims[g.dataset], jobs[g.dataset]
        history = sim.simulate_one_alibaba_group(job, g, beta_knob, eta_knob)
        out.append((summarize_group(sim.table(job), g, history, eta_knob), history))
    return out


@dataclass(frozen=True)
class GroupRun:
    """A group history entry with its group's name, as one flat output row."""

    group: str
    job_index: int
    attempt: int
    start_time: float
    end_time: float
    concurrent: bool
    batch_size: int
    power_limit: int
    energy_j: float
    time_s: float
    reached: bool
    cost: float

    @classmethod
    def of(cls, group: str, e: GroupHistoryEntry) -> GroupRun:
        return cls(group, **asdict(e))
