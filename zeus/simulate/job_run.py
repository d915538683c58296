"""One simulation in progress: policy copies, the trace-sampling RNG, ``min_cost`` and the history.

`JobRun` holds everything that changes while one recurring job (`Simulator.simulate_one_job`) or
one cluster group (`zeus.simulate.groups.simulate_group`) is simulated; both drive it through
``recurrence``/``run_once``/``outcome``. Semantics: the project's simulator spec (up to
``MAX_TRIES`` tries per recurrence, ``beta·min_cost`` early stopping, profiling in the first epoch
of a batch size's first run).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from zeus.cost import CostModel
from zeus.errors import ZeusConfigError, ZeusError
from zeus.policy.base import BatchSizeOptimizer, PowerLimitOptimizer
from zeus.simulate.traces import WorkloadTable

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


# Per (table, eta), kept alive by the value so the id stays valid: simulations of the same job on
# the same GPU, e.g. one per seed in a sweep, share them.
_ARRAYS: dict[tuple[int, float], tuple[_Arrays, WorkloadTable]] = {}


def _cached_arrays(table: WorkloadTable, eta_knob: float) -> _Arrays:
    key = (id(table), eta_knob)
    if key not in _ARRAYS or _ARRAYS[key][1] is not table:
        if len(_ARRAYS) > 256:
            _ARRAYS.clear()
        _ARRAYS[key] = (_arrays(table, eta_knob), table)
    return _ARRAYS[key][0]


class JobRun:
    """The mutable state of one simulation of ``table``'s job.

    The policies given are deep-copied (the caller's are never mutated) and the batch-size policy
    copy registers the job; ``seed`` seeds the sampling of trace runs.
    """

    def __init__(
        self,
        table: WorkloadTable,
        batch_size_optimizer: BatchSizeOptimizer,
        power_limit_optimizer: PowerLimitOptimizer,
        seed: int,
        eta_knob: float,
        beta_knob: float,
    ) -> None:
        self.table = table
        self.job = table.job
        self.arrays = _cached_arrays(table, eta_knob)
        self.cost_model = CostModel(eta_knob, table.max_power_w)
        self.beta_knob = beta_knob
        self.bso = copy.deepcopy(batch_size_optimizer)
        self.plo = copy.deepcopy(power_limit_optimizer)
        self.bso.register_job(self.job, list(table.batch_sizes))
        self.rng = np.random.default_rng(seed)
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
            self.observe_phantom(bs)
            return None
        self.bso.observe(self.job, bs, entry.cost, entry.reached)
        self.history.append(entry)
        return entry

    def observe_phantom(self, bs: int) -> None:
        """A try that never started: the batch-size policy sees a failure costing 100·beta·min_cost."""
        self.bso.observe(self.job, bs, 100 * self.beta_knob * self.min_cost, False)

    def outcome(self, rec: int, bs: int) -> HistoryEntry | None:
        """Sample a run of ``bs`` and apply early stopping; the batch-size policy is not told."""
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
        first_cost = self.cost_model.cost(first_e, first_t)
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
        cost = self.cost_model.cost(energy_j, time_s)
        return HistoryEntry(rec, bs, pl, energy_j, time_s, reached, cost)
