"""The trace-driven simulator of one recurring job (semantics: the project's simulator spec).

Each try asks the batch-size policy for ``b`` and the power-limit policy for ``p`` (profiling every
limit in the first epoch the first time ``b`` runs), samples one trace run of ``b``, applies the
``beta·min_cost`` early-stopping budget and reports the outcome back to the batch-size policy. The
policies given to the constructor are never mutated: every simulation works on deep copies.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zeus.cost import check_eta, zeus_cost
from zeus.errors import ZeusConfigError, ZeusError, check_range
from zeus.job import Job
from zeus.policy.base import BatchSizeOptimizer, PowerLimitOptimizer
from zeus.simulate.traces import (
    PowerTrace,
    TrainTrace,
    WorkloadTable,
    build_table,
    load_power_trace,
    load_train_trace,
)

if TYPE_CHECKING:
    from zeus.simulate.groups import Group, GroupHistoryEntry, GroupJob

logger = logging.getLogger(__name__)

MAX_TRIES = 20


class SimulationError(ZeusError):
    """A simulated job could not proceed (e.g. 20 failed tries in one recurrence)."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One run (try) of a simulated recurrence. ``recurrence`` is 0-based."""

    recurrence: int
    batch_size: int
    power_limit: int
    energy_j: float
    time_s: float
    reached: bool
    cost: float


@dataclass
class _Arrays:
    """Per-(batch size) Python lists for the hot loop, for one eta."""

    limits_desc: list[int]
    cost_by_limit: list[dict[int, float]]  # per-epoch cost of every measured limit
    time_by_limit: list[dict[int, float]]
    energy_by_limit: list[dict[int, float]]
    profile_time_s: list[float]  # the profiling epoch: mean over measured limits
    profile_energy_j: list[float]
    run_epochs: list[list[float]]


def _arrays(table: WorkloadTable, eta_knob: float) -> _Arrays:
    cost = table.epoch_cost(eta_knob)
    limits_desc = sorted(table.power_limits, reverse=True)
    cols = {pl: table.power_limits.index(pl) for pl in limits_desc}
    by_limit: list[list[dict[int, float]]] = [[], [], []]
    for i in range(len(table.batch_sizes)):
        for out, arr in zip(
            by_limit, (cost, table.epoch_time_s, table.epoch_energy_j), strict=True
        ):
            out.append({pl: float(arr[i, j]) for pl, j in cols.items() if not np.isnan(arr[i, j])})
    return _Arrays(
        limits_desc=limits_desc,
        cost_by_limit=by_limit[0],
        time_by_limit=by_limit[1],
        energy_by_limit=by_limit[2],
        profile_time_s=[float(np.nanmean(r)) for r in table.epoch_time_s],
        profile_energy_j=[float(np.nanmean(r)) for r in table.epoch_energy_j],
        run_epochs=[r.tolist() for r in table.run_epochs],
    )


def check_knobs(beta_knob: float, eta_knob: float, num_recurrence: int | None = None) -> None:
    """Validate the knobs shared by every simulation entry point."""
    check_eta(eta_knob)
    check_range("beta_knob", beta_knob, gt=0)
    if num_recurrence is not None:
        check_range("num_recurrence", num_recurrence, ge=1)


class Simulator:
    """Simulates recurring jobs of one GPU from a train trace and that GPU's power trace.

    ``train_trace``: a `TrainTrace`, a CSV path, or None for the bundled trace. ``power_trace``: a
    `PowerTrace`, a bundled GPU name (``"v100"``) or a CSV path.
    """

    def __init__(
        self,
        train_trace: TrainTrace | str | Path | None,
        power_trace: PowerTrace | str | Path,
        batch_size_optimizer: BatchSizeOptimizer,
        power_limit_optimizer: PowerLimitOptimizer,
        seed: int = 1,
    ) -> None:
        self.train = (
            train_trace
            if isinstance(train_trace, TrainTrace)
            else load_train_trace(_opt_str(train_trace))
        )
        self.power = (
            power_trace
            if isinstance(power_trace, PowerTrace)
            else load_power_trace(str(power_trace))
        )
        self.bso = batch_size_optimizer
        self.plo = power_limit_optimizer
        self.seed = seed
        self._tables: dict[Job, WorkloadTable] = {}

    def table(self, job: Job) -> WorkloadTable:
        """The joined arrays of ``job`` on this GPU (cached); validates that b0 can reach the target."""
        if job not in self._tables:
            table = _cached_table(job, self.train, self.power)
            b0 = table.job.default_bs
            runs = table.run_epochs[table.index(b0)]
            if not np.any(runs <= job.max_epochs):
                raise ZeusConfigError(
                    f"default batch size {b0} of {job.name} never reaches target "
                    f"{job.target_metric:g} within max_epochs={job.max_epochs} in the train trace"
                )
            self._tables[job] = table
        return self._tables[job]

    def default_num_recurrence(self, job: Job) -> int:
        table = self.table(job)
        return 2 * len(table.batch_sizes) * len(table.power_limits)

    def simulate_one_job(
        self,
        job: Job,
        num_recurrence: int | None = None,
        beta_knob: float = 2.0,
        eta_knob: float = 0.5,
    ) -> list[HistoryEntry]:
        """Every run of ``num_recurrence`` recurrences (default ``2·|batch sizes|·|limits|``)."""
        check_knobs(beta_knob, eta_knob, num_recurrence)
        table = self.table(job)
        n = num_recurrence if num_recurrence is not None else self.default_num_recurrence(job)
        run = _JobRun(self, table, eta_knob, beta_knob)
        for rec in range(n):
            run.recurrence(rec)
        return run.history

    def simulate_one_alibaba_group(
        self,
        job: Job,
        group: Group | Sequence[GroupJob],
        beta_knob: float = 2.0,
        eta_knob: float = 0.5,
    ) -> list[GroupHistoryEntry]:
        """Every run of the jobs of one cluster group, in end-time order (see `zeus.simulate.groups`)."""
        from zeus.simulate.groups import Group, simulate_group

        check_knobs(beta_knob, eta_knob)
        if not isinstance(group, Group):
            group = Group("group", job.dataset, tuple(sorted(group, key=lambda j: j.start_time)))
        elif group.dataset != job.dataset:
            raise ZeusConfigError(f"group {group.name} is of {group.dataset}, not of {job.dataset}")
        if not group.jobs:
            raise ZeusConfigError(f"group {group.name} has no jobs")
        run = _JobRun(self, self.table(job), eta_knob, beta_knob)
        return simulate_group(run, group)


# Tables of traces that stay alive (the bundled ones are cached): simulations of the same job on the
# same GPU, e.g. one per seed in a sweep, share them. The value keeps the traces alive so ids stay valid.
_TABLES: dict[tuple[Job, int, int], tuple[WorkloadTable, TrainTrace, PowerTrace]] = {}
_ARRAYS: dict[tuple[int, float], tuple[_Arrays, WorkloadTable]] = {}


def _cached_table(job: Job, train: TrainTrace, power: PowerTrace) -> WorkloadTable:
    key = (job, id(train), id(power))
    if key not in _TABLES:
        if len(_TABLES) > 256:
            _TABLES.clear()
        _TABLES[key] = (build_table(job, train, power), train, power)
    return _TABLES[key][0]


def _cached_arrays(table: WorkloadTable, eta_knob: float) -> _Arrays:
    key = (id(table), eta_knob)
    if key not in _ARRAYS or _ARRAYS[key][1] is not table:
        if len(_ARRAYS) > 256:
            _ARRAYS.clear()
        _ARRAYS[key] = (_arrays(table, eta_knob), table)
    return _ARRAYS[key][0]


def _opt_str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


class _JobRun:
    """The mutable state of one simulation: policy copies, RNG, min cost, history."""

    def __init__(
        self, sim: Simulator, table: WorkloadTable, eta_knob: float, beta_knob: float
    ) -> None:
        self.table = table
        self.job = table.job
        self.arrays = _cached_arrays(table, eta_knob)
        self.eta_knob = eta_knob
        self.beta_knob = beta_knob
        self.bso = copy.deepcopy(sim.bso)
        self.plo = copy.deepcopy(sim.plo)
        self.bso.register_job(self.job, list(table.batch_sizes))
        self.rng = np.random.default_rng(sim.seed)
        self.min_cost = math.inf
        self.history: list[HistoryEntry] = []

    def recurrence(self, rec: int, batch_size: int | None = None) -> tuple[float, bool]:
        """Run tries until one reaches the target; returns the accumulated cost."""
        acc_cost = 0.0
        for _ in range(MAX_TRIES):
            bs = batch_size if batch_size is not None else self.bso.predict(self.job)
            entry = self.run_once(rec, bs)
            if entry is None:
                continue
            acc_cost += entry.cost
            if entry.reached:
                self.min_cost = min(self.min_cost, acc_cost)
                return acc_cost, True
        raise SimulationError(
            f"recurrence {rec + 1} of {self.job.name} on {self.table.gpu} did not reach the "
            f"target in {MAX_TRIES} tries"
        )

    def run_once(self, rec: int, bs: int) -> HistoryEntry | None:
        """One try at ``bs``: None when not even one epoch fits the budget (a phantom failure)."""
        entry = self.outcome(rec, bs)
        if entry is None:
            self.bso.observe(self.job, bs, 100 * self.beta_knob * self.min_cost, False)
            return None
        self.bso.observe(self.job, bs, entry.cost, entry.reached)
        self.history.append(entry)
        return entry

    def outcome(self, rec: int, bs: int) -> HistoryEntry | None:
        """Sample a run of ``bs`` and apply early stopping; the policies are not told anything."""
        if bs not in self.table.batch_sizes:
            raise ZeusConfigError(
                f"{self.bso.name} proposed batch size {bs}, not one of {list(self.table.batch_sizes)}"
            )
        a, i = self.arrays, self.table.index(bs)
        runs = a.run_epochs[i]
        target = runs[int(self.rng.integers(len(runs)))]
        budget = self.beta_knob * self.min_cost
        pl = self.plo.predict(self.job, bs)
        profiling = pl is None
        if profiling:
            first_t, first_e = a.profile_time_s[i], a.profile_energy_j[i]
        else:
            assert pl is not None
            first_t, first_e = a.time_by_limit[i][pl], a.energy_by_limit[i][pl]
        first_cost = zeus_cost(first_e, first_t, self.eta_knob, self.table.max_power_w)
        if first_cost > budget:
            return None
        if profiling:  # JIT profiling runs during the first epoch, high limits first
            for limit in a.limits_desc:
                if limit in a.cost_by_limit[i]:
                    self.plo.observe(self.job, bs, limit, a.cost_by_limit[i][limit])
            pl = self.plo.predict(self.job, bs)
        if pl not in a.cost_by_limit[i]:
            raise SimulationError(f"power limit {pl} of batch size {bs} is not in the trace")
        assert pl is not None
        epoch_c = a.cost_by_limit[i][pl]
        max_epochs = self.job.max_epochs
        if math.isfinite(budget):
            max_epochs = min(max_epochs, 1 + int((budget - first_cost) // epoch_c))
        reached = target <= max_epochs  # NaN (never reached) compares False
        epochs = int(target) if reached else max_epochs
        time_s = first_t + (epochs - 1) * a.time_by_limit[i][pl]
        energy_j = first_e + (epochs - 1) * a.energy_by_limit[i][pl]
        cost = zeus_cost(energy_j, time_s, self.eta_knob, self.table.max_power_w)
        return HistoryEntry(rec, bs, pl, energy_j, time_s, reached, cost)
