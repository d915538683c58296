"""Default and Oracle configurations from the traces, and what a user reads off a simulation.

Expected figures treat every trace run of a configuration as equally likely; a configuration whose
runs do not all reach the target pays for retries: with ``n_ok`` reaching runs and ``n_fail`` that
do not (each failing run lasting ``max_epochs``), the expected epochs until success are
``(Σ epochs of reaching runs + n_fail·max_epochs) / n_ok``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from zeus.cost import zeus_cost
from zeus.simulate.job_run import HistoryEntry
from zeus.simulate.traces import WorkloadTable

CONVERGENCE_TOLERANCE = 0.05
LAST_N = 10


@dataclass(frozen=True)
class Config:
    """A (batch size, power limit) and its expected energy, time and cost until success."""

    batch_size: int
    power_limit: int
    energy_j: float
    time_s: float
    cost: float


def expected_epochs(table: WorkloadTable, i: int) -> float:
    """Expected epochs until a run of batch size index ``i`` reaches the target (inf if none do)."""
    cached = _EPOCHS.get(id(table))
    if cached is None or cached[0] is not table:
        if len(_EPOCHS) > 256:
            _EPOCHS.clear()
        cached = (table, [_expected_epochs(table, k) for k in range(len(table.batch_sizes))])
        _EPOCHS[id(table)] = cached
    return cached[1][i]


# Per table (kept alive by the value, so the id stays valid): expected epochs per batch size.
_EPOCHS: dict[int, tuple[WorkloadTable, list[float]]] = {}


def _expected_epochs(table: WorkloadTable, i: int) -> float:
    runs = table.run_epochs[i]
    max_epochs = table.job.max_epochs
    ok = runs <= max_epochs
    n_ok = int(ok.sum())
    if n_ok == 0:
        return math.inf
    return float((runs[ok].sum() + (len(runs) - n_ok) * max_epochs) / n_ok)


def expected_config(
    table: WorkloadTable, batch_size: int, power_limit: int, eta_knob: float
) -> Config:
    i, j = table.index(batch_size), table.power_limits.index(power_limit)
    epochs = expected_epochs(table, i)
    energy = epochs * float(table.epoch_energy_j[i, j])
    time = epochs * float(table.epoch_time_s[i, j])
    cost = zeus_cost(energy, time, eta_knob, table.max_power_w)
    return Config(batch_size, power_limit, energy, time, cost)


def default_config(table: WorkloadTable, eta_knob: float) -> Config:
    """b0 at the largest measured power limit."""
    i = table.index(table.job.default_bs)
    measured = [
        pl for j, pl in enumerate(table.power_limits) if not np.isnan(table.epoch_time_s[i, j])
    ]
    return expected_config(table, table.job.default_bs, max(measured), eta_knob)


def oracle_config(table: WorkloadTable, eta_knob: float) -> Config:
    """The measured (batch size, power limit) with the lowest expected cost."""
    best: Config | None = None
    for i, bs in enumerate(table.batch_sizes):
        if math.isinf(expected_epochs(table, i)):
            continue
        for j, pl in enumerate(table.power_limits):
            if np.isnan(table.epoch_time_s[i, j]):
                continue
            c = expected_config(table, bs, pl, eta_knob)
            if best is None or c.cost < best.cost:
                best = c
    assert best is not None, "the default batch size reaches the target, so some config does"
    return best


@dataclass(frozen=True)
class Recurrence:
    """Sums over the runs of one recurrence, and the configuration that finally reached."""

    energy_j: float
    time_s: float
    cost: float
    batch_size: int
    power_limit: int


def recurrences(history: list[HistoryEntry]) -> list[Recurrence]:
    out: list[Recurrence] = []
    energy = time = cost = 0.0
    for e in history:
        energy, time, cost = energy + e.energy_j, time + e.time_s, cost + e.cost
        if e.reached:
            out.append(Recurrence(energy, time, cost, e.batch_size, e.power_limit))
            energy = time = cost = 0.0
    return out


@dataclass(frozen=True)
class Metrics:
    """One simulation against Default and Oracle (fractions, not percent)."""

    num_recurrence: int
    last10_energy_saving: float
    last10_time_change: float
    all_energy_saving: float
    all_time_change: float
    cum_regret: float  # in units of one Oracle run
    default_cum_regret: float
    conv_rec: int | None  # 1-based recurrence from which the choice stays within 5% of Oracle

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def metrics(table: WorkloadTable, history: list[HistoryEntry], eta_knob: float) -> Metrics:
    recs = recurrences(history)
    default, oracle = default_config(table, eta_knob), oracle_config(table, eta_knob)
    energy = np.array([r.energy_j for r in recs])
    time = np.array([r.time_s for r in recs])
    cost = np.array([r.cost for r in recs])
    last = slice(-LAST_N, None)
    return Metrics(
        num_recurrence=len(recs),
        last10_energy_saving=1 - float(energy[last].mean()) / default.energy_j,
        last10_time_change=float(time[last].mean()) / default.time_s - 1,
        all_energy_saving=1 - float(energy.mean()) / default.energy_j,
        all_time_change=float(time.mean()) / default.time_s - 1,
        cum_regret=float(((cost - oracle.cost) / oracle.cost).sum()),
        default_cum_regret=len(recs) * (default.cost - oracle.cost) / oracle.cost,
        conv_rec=convergence_recurrence(table, recs, oracle, eta_knob),
    )


def convergence_recurrence(
    table: WorkloadTable, recs: list[Recurrence], oracle: Config, eta_knob: float
) -> int | None:
    """1-based index after which every chosen configuration's expected cost is within 5% of Oracle."""
    limit = (1 + CONVERGENCE_TOLERANCE) * oracle.cost
    cache: dict[tuple[int, int], bool] = {}
    conv: int | None = None
    for n, r in enumerate(recs, start=1):
        key = (r.batch_size, r.power_limit)
        if key not in cache:
            cache[key] = expected_config(table, *key, eta_knob).cost <= limit
        if not cache[key]:
            conv = None
        elif conv is None:
            conv = n
    return conv
