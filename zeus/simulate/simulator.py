"""The trace-driven simulator of one recurring job (semantics: the project's simulator spec).

Each try asks the batch-size policy for ``b`` and the power-limit policy for ``p`` (profiling every
limit in the first epoch the first time ``b`` runs), samples one trace run of ``b``, applies the
``beta·min_cost`` early-stopping budget and reports the outcome back to the batch-size policy. The
policies given to the constructor are never mutated: every simulation works on deep copies.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zeus.cost import check_eta
from zeus.errors import ZeusConfigError, check_range
from zeus.job import Job
from zeus.policy.base import BatchSizeOptimizer, PowerLimitOptimizer
from zeus.simulate.groups import Group, GroupHistoryEntry, GroupJob, simulate_group
from zeus.simulate.job_run import HistoryEntry as HistoryEntry  # re-exported
from zeus.simulate.job_run import JobRun
from zeus.simulate.job_run import SimulationError as SimulationError  # re-exported
from zeus.simulate.traces import (
    PowerTrace,
    TrainTrace,
    WorkloadTable,
    build_table,
    load_power_trace,
    load_train_trace,
)

logger = logging.getLogger(__name__)


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
        run = JobRun(table, self.bso, self.plo, self.seed, eta_knob, beta_knob)
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
        check_knobs(beta_knob, eta_knob)
        if not isinstance(group, Group):
            group = Group("group", job.dataset, tuple(sorted(group, key=lambda j: j.start_time)))
        elif group.dataset != job.dataset:
            raise ZeusConfigError(f"group {group.name} is of {group.dataset}, not of {job.dataset}")
        if not group.jobs:
            raise ZeusConfigError(f"group {group.name} has no jobs")
        run = JobRun(self.table(job), self.bso, self.plo, self.seed, eta_knob, beta_knob)
        return simulate_group(run, group)


# Tables of traces that stay alive (the bundled ones are cached): simulations of the same job on the
# same GPU, e.g. one per seed in a sweep, share them. The value keeps the traces alive so ids stay valid.
_TABLES: dict[tuple[Job, int, int], tuple[WorkloadTable, TrainTrace, PowerTrace]] = {}


def _cached_table(job: Job, train: TrainTrace, power: PowerTrace) -> WorkloadTable:
    key = (job, id(train), id(power))
    if key not in _TABLES:
        if len(_TABLES) > 256:
            _TABLES.clear()
        _TABLES[key] = (build_table(job, train, power), train, power)
    return _TABLES[key][0]


def _opt_str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)
