"""Alibaba-style cluster groups: recurring jobs of one workload that may overlap in time.

A group trace has one row per job: ``group, start_time, end_time, dataset, runtime_ratio`` (CSV,
plain or ``.gz``/``.xz``). Rules (the project's simulator spec): jobs are submitted at their start
times; a job that starts while another job of its group runs uses the cheapest known batch size (no
exploration); a failed job is retried when it ends, for the same duration; outcomes are observed when
jobs end, in end-time order; reported energy, time and cost are scaled by ``runtime_ratio`` (the
policies learn the unscaled cost, which is what a batch size costs for the workload).

The published Alibaba group trace is not available; :func:`generate_groups` draws synthetic ones
(distributions documented in ``docs/simulator.md`` and on the function).
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import lzma
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from zeus.errors import ZeusConfigError, check_range
from zeus.simulate.job_run import MAX_TRIES, JobRun, SimulationError
from zeus.simulate.traces import WORKLOADS, WorkloadTable

GROUP_COLUMNS = ("group", "start_time", "end_time", "dataset", "runtime_ratio")


@dataclass(frozen=True)
class GroupJob:
    start_time: float
    end_time: float
    runtime_ratio: float

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time


@dataclass(frozen=True)
class Group:
    """The jobs of one group (sorted by start time), all of workload ``dataset``."""

    name: str
    dataset: str
    jobs: tuple[GroupJob, ...]


@dataclass(frozen=True, slots=True)
class GroupHistoryEntry:
    """One run of a group job. Energy, time and cost are already scaled by the job's ratio."""

    job_index: int
    attempt: int
    start_time: float
    end_time: float
    concurrent: bool  # started while another job of the group ran: cheapest known batch size
    batch_size: int
    power_limit: int
    energy_j: float
    time_s: float
    reached: bool
    cost: float


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), newline="")
    if path.suffix == ".xz":
        return io.TextIOWrapper(lzma.open(path, "rb"), newline="")
    return path.open(newline="")


def _number(row: dict[str, str], col: str, where: str) -> float:
    try:
        return float(row[col])
    except ValueError:
        raise ZeusConfigError(f"{where}: {col} must be a number, got {row[col]!r}") from None


def load_group_trace(path: str | Path) -> list[Group]:
    """Groups from a user's trace file (CSV, optionally ``.gz``/``.xz``), in first-seen order."""
    path = Path(path)
    if not path.is_file():
        raise ZeusConfigError(f"group trace file {path} does not exist")
    jobs: dict[str, list[GroupJob]] = {}
    datasets: dict[str, str] = {}
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        missing = [c for c in GROUP_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ZeusConfigError(
                f"group trace {path} lacks column(s) {', '.join(missing)}; needs {', '.join(GROUP_COLUMNS)}"
            )
        for n, row in enumerate(reader, start=2):
            where = f"{path} line {n}"
            start, end = _number(row, "start_time", where), _number(row, "end_time", where)
            ratio = _number(row, "runtime_ratio", where)
            if not end > start:
                raise ZeusConfigError(f"{where}: end_time must be > start_time")
            check_range(f"{where}: runtime_ratio", ratio, gt=0)
            if row["dataset"] not in WORKLOADS:
                raise ZeusConfigError(
                    f"{where}: unknown dataset {row['dataset']!r}; valid: {', '.join(WORKLOADS)}"
                )
            if datasets.setdefault(row["group"], row["dataset"]) != row["dataset"]:
                raise ZeusConfigError(f"{where}: group {row['group']} mixes datasets")
            jobs.setdefault(row["group"], []).append(GroupJob(start, end, ratio))
    if not jobs:
        raise ZeusConfigError(f"group trace {path} has no rows")
    return [
        Group(name, datasets[name], tuple(sorted(js, key=lambda j: j.start_time)))
        for name, js in jobs.items()
    ]


def write_group_trace(groups: Iterable[Group], path: str | Path) -> None:
    """Write groups in the trace format (compressed when the name ends in ``.gz``/``.xz``)."""
    path = Path(path)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(GROUP_COLUMNS)
    for g in groups:
        for j in g.jobs:
            writer.writerow(
                [
                    g.name,
                    f"{j.start_time:.3f}",
                    f"{j.end_time:.3f}",
                    g.dataset,
                    f"{j.runtime_ratio:.4f}",
                ]
            )
    data = buf.getvalue().encode()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".xz":
        data = lzma.compress(data)
    path.write_bytes(data)


def generate_groups(
    datasets: Iterable[str],
    num_groups: int,
    seed: int,
    *,
    mean_jobs: float = 40.0,
    mean_concurrency: float = 0.3,
    ratio_sigma: float = 0.5,
    base_runtime_s: float = 3600.0,
) -> list[Group]:
    """Synthetic groups, ``num_groups`` per dataset, reproducible from ``seed``.

    - jobs per group: ``1 + Poisson(mean_jobs − 1)``;
    - ``runtime_ratio``: log-normal with median 1 and log-sd ``ratio_sigma``, clipped to [0.2, 5];
    - duration: ``runtime_ratio · base_runtime_s``;
    - submissions: a Poisson process whose rate makes ``mean_concurrency`` jobs run at a time on
      average (Little's law: mean inter-arrival = mean duration / mean_concurrency). With the
      default 0.3 about a quarter of the jobs start while another of their group is running.
    """
    datasets = list(datasets)
    for d in datasets:
        if d not in WORKLOADS:
            raise ZeusConfigError(f"unknown dataset {d!r}; valid: {', '.join(WORKLOADS)}")
    check_range("num_groups", num_groups, ge=1)
    check_range("mean_jobs", mean_jobs, ge=1)
    check_range("mean_concurrency", mean_concurrency, gt=0)
    check_range("ratio_sigma", ratio_sigma, ge=0)
    check_range("base_runtime_s", base_runtime_s, gt=0)
    rng = np.random.default_rng(seed)
    mean_duration = base_runtime_s * math.exp(ratio_sigma**2 / 2)
    groups = []
    for dataset in datasets:
        for g in range(num_groups):
            n = 1 + int(rng.poisson(mean_jobs - 1))
            ratios = np.clip(rng.lognormal(0.0, ratio_sigma, n), 0.2, 5.0)
            starts = np.cumsum(rng.exponential(mean_duration / mean_concurrency, n))
            starts -= starts[0]
            jobs = tuple(
                GroupJob(float(s), float(s + r * base_runtime_s), float(r))
                for s, r in zip(starts, ratios, strict=True)
            )
            groups.append(Group(f"{dataset}-{g:03d}", dataset, jobs))
    return groups


def simulate_group(run: JobRun, group: Group) -> list[GroupHistoryEntry]:
    """Event-driven simulation of one group on a prepared job run (policies, RNG, min cost)."""
    table: WorkloadTable = run.table
    best: tuple[float, int] | None = None  # cheapest successful run so far: (cost, batch size)
    acc_cost = [0.0] * len(group.jobs)
    running = 0
    history: list[GroupHistoryEntry] = []
    # Events: (time, kind, seq, ...). Ends (kind 0) before submissions (kind 1) at the same time.
    events: list[tuple[float, int, int, int, int, GroupHistoryEntry | None]] = []
    for k, j in enumerate(group.jobs):
        heapq.heappush(events, (j.start_time, 1, k, k, 0, None))
    seq = len(group.jobs)
    while events:
        now, kind, _, k, attempt, entry = heapq.heappop(events)
        job = group.jobs[k]
        if kind == 0:
            assert entry is not None
            running -= 1
            unscaled = entry.cost / job.runtime_ratio
            run.bso.observe(run.job, entry.batch_size, unscaled, entry.reached)
            history.append(entry)
            acc_cost[k] += unscaled
            if entry.reached:
                run.min_cost = min(run.min_cost, acc_cost[k])
                if best is None or unscaled < best[0]:
                    best = (unscaled, entry.batch_size)
                continue
            if attempt + 1 >= MAX_TRIES:
                raise SimulationError(f"job {k} of group {group.name} failed {MAX_TRIES} times")
            heapq.heappush(events, (now, 1, seq, k, attempt + 1, None))
            seq += 1
            continue
        concurrent = running > 0
        for _ in range(MAX_TRIES):
            if concurrent:
                bs = best[1] if best is not None else table.job.default_bs
            else:
                bs = run.bso.predict(run.job)
            outcome = run.outcome(k, bs)
            if outcome is not None:
                break
            run.observe_phantom(bs)
        else:
            raise SimulationError(
                f"job {k} of group {group.name} could not start in {MAX_TRIES} tries"
            )
        r = job.runtime_ratio
        scaled = GroupHistoryEntry(
            k, attempt, now, now + job.duration, concurrent, outcome.batch_size, outcome.power_limit,
            outcome.energy_j * r, outcome.time_s * r, outcome.reached, outcome.cost * r,
        )  # fmt: skip
        running += 1
        heapq.heappush(events, (now + job.duration, 0, seq, k, attempt, scaled))
        seq += 1
    return history
