"""Built-in batch-size policies: the two per-job cores (pruning + Gaussian Thompson Sampling, local
search + Thompson sampling) and two baselines."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from zeus.errors import ZeusConfigError
from zeus.job import Job
from zeus.policy import local_search_ts, pruning_gts
from zeus.policy.base import BatchSizeOptimizer


def _check_registration(job: Job, batch_sizes: list[int]) -> list[int]:
    sizes = sorted(set(int(b) for b in batch_sizes))
    if not sizes:
        raise ZeusConfigError(f"batch_sizes of {job.name} must not be empty")
    if job.default_bs not in sizes:
        raise ZeusConfigError(
            f"default batch size {job.default_bs} of {job.name} must be one of {sizes}"
        )
    return sizes


class PerJobCoreOptimizer(BatchSizeOptimizer):
    """A ``dict[Job, state]`` over a pure per-job core module (`pruning_gts`, `local_search_ts`).

    The core module provides ``new_state(batch_sizes, default_bs, *, seed, **params)``,
    ``next_batch_size(state) -> (batch_size, is_exploration)``, ``observe(state, batch_size, cost,
    converged, was_exploration)`` and ``best_batch_size(state)``; its state has ``to_dict`` /
    ``from_dict`` and ``exploration_in_flight``. With ``concurrency=True``, predicting while an
    exploration is in flight gives a concurrent trial at the best known batch size; with
    ``concurrency=False`` (one recurrence at a time) it hands the unobserved exploration out again.
    """

    core: ClassVar[Any]
    state_type: ClassVar[Any]

    def __init__(self, seed: int | None, concurrency: bool, params: dict[str, Any]) -> None:
        self.seed = seed
        self.concurrency = concurrency
        self.params = params
        self.core.new_state([1], 1, **self.params)  # validate the parameters now
        self.states: dict[Job, Any] = {}

    def register_job(self, job: Job, batch_sizes: list[int]) -> None:
        sizes = _check_registration(job, batch_sizes)
        if job in self.states and self.states[job].batch_sizes == sizes:
            return  # registering again keeps what was learnt
        # One independent stream per registered job, all derived from the policy's seed.
        seed = None if self.seed is None else _seed_int([self.seed, len(self.states)])
        self.states[job] = self.core.new_state(sizes, job.default_bs, seed=seed, **self.params)

    def _state(self, job: Job) -> Any:
        try:
            return self.states[job]
        except KeyError:
            raise ZeusConfigError(
                f"job {job.name} was not registered with register_job()"
            ) from None

    def predict(self, job: Job) -> int:
        state = self._state(job)
        if not self.concurrency and state.exploration_in_flight is not None:
            return int(state.exploration_in_flight)
        return int(self.core.next_batch_size(state)[0])

    def best_batch_size(self, job: Job) -> int:
        """The cheapest known batch size of ``job`` (used for overlapping recurrences)."""
        return int(self.core.best_batch_size(self._state(job)))

    def observe(
        self, job: Job, batch_size: int, cost: float, converged: bool | None = None
    ) -> None:
        state = self._state(job)
        was_exploration = batch_size == state.exploration_in_flight
        self.core.observe(state, batch_size, cost, converged is not False, was_exploration)

    def state_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "concurrency": self.concurrency,
            "params": dict(self.params),
            "jobs": [{"job": j.to_dict(), "state": s.to_dict()} for j, s in self.states.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = state["seed"]
        self.concurrency = bool(state["concurrency"])
        self.params = dict(state["params"])
        self.states = {
            Job.from_dict(e["job"]): self.state_type.from_dict(e["state"]) for e in state["jobs"]
        }


class PruningGTSBatchSizeOptimizer(PerJobCoreOptimizer):
    """Zeus's batch-size policy: pruning rounds, then Gaussian Thompson Sampling (reward = -cost).

    A thin ``dict[Job, PruningGTSState]`` over `zeus.policy.pruning_gts` (see `PerJobCoreOptimizer`
    for ``concurrency``).
    """

    core: ClassVar[Any] = pruning_gts
    state_type: ClassVar[Any] = pruning_gts.PruningGTSState

    def __init__(
        self,
        seed: int | None = None,
        window_size: int = 0,
        concurrency: bool = False,
        num_pruning_rounds: int = 2,
        prior_mean: float = 0.0,
        prior_precision: float = 0.0,
        num_explorations: int = 2,
    ) -> None:
        params: dict[str, Any] = {
            "window_size": window_size,
            "num_pruning_rounds": num_pruning_rounds,
            "prior_mean": prior_mean,
            "prior_precision": prior_precision,
            "num_explorations": num_explorations,
        }
        super().__init__(seed, concurrency, params)


class LocalSearchTSBatchSizeOptimizer(PerJobCoreOptimizer):
    """Local search over neighbouring batch sizes, then Thompson sampling on the cost per reached
    target: a thin ``dict[Job, LocalSearchTSState]`` over `zeus.policy.local_search_ts` (see
    `PerJobCoreOptimizer` for ``concurrency``)."""

    core: ClassVar[Any] = local_search_ts
    state_type: ClassVar[Any] = local_search_ts.LocalSearchTSState

    def __init__(
        self,
        seed: int | None = None,
        window_size: int = 0,
        concurrency: bool = False,
        explore_tolerance: float = 0.15,
        prior_cv: float = 0.1,
    ) -> None:
        params: dict[str, Any] = {
            "window_size": window_size,
            "explore_tolerance": explore_tolerance,
            "prior_cv": prior_cv,
        }
        super().__init__(seed, concurrency, params)


def _seed_int(seed: list[int]) -> int:
    """A 64-bit integer seed from (policy seed, job index), stable across processes."""
    return int(np.random.SeedSequence(seed).generate_state(2, np.uint64)[0])


class DefaultBatchSizeOptimizer(BatchSizeOptimizer):
    """Baseline: always the job's default batch size."""

    def __init__(self) -> None:
        self.jobs: set[Job] = set()

    def register_job(self, job: Job, batch_sizes: list[int]) -> None:
        _check_registration(job, batch_sizes)
        self.jobs.add(job)

    def predict(self, job: Job) -> int:
        if job not in self.jobs:
            raise ZeusConfigError(f"job {job.name} was not registered with register_job()")
        return job.default_bs

    def observe(
        self, job: Job, batch_size: int, cost: float, converged: bool | None = None
    ) -> None:
        """Nothing to learn."""

    def state_dict(self) -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in self.jobs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.jobs = {Job.from_dict(j) for j in state["jobs"]}


class GridSearchBatchSizeOptimizer(BatchSizeOptimizer):
    """Baseline: each batch size once (default first, then ascending), then the best observed.

    "Best" is the lowest cost among runs that reached the target; the default when none did.
    """

    def __init__(self) -> None:
        self.pending: dict[Job, list[int]] = {}
        self.best: dict[Job, tuple[float, int]] = {}

    def register_job(self, job: Job, batch_sizes: list[int]) -> None:
        sizes = _check_registration(job, batch_sizes)
        self.pending[job] = [job.default_bs] + [b for b in sizes if b != job.default_bs]

    def predict(self, job: Job) -> int:
        if job not in self.pending:
            raise ZeusConfigError(f"job {job.name} was not registered with register_job()")
        if self.pending[job]:
            return self.pending[job][0]
        return self.best[job][1] if job in self.best else job.default_bs

    def observe(
        self, job: Job, batch_size: int, cost: float, converged: bool | None = None
    ) -> None:
        queue = self.pending.get(job, [])
        if queue and queue[0] == batch_size:
            queue.pop(0)
        if converged is not False and (job not in self.best or cost < self.best[job][0]):
            self.best[job] = (float(cost), batch_size)

    def state_dict(self) -> dict[str, Any]:
        return {
            "jobs": [
                {"job": j.to_dict(), "pending": q, "best": self.best.get(j)}
                for j, q in self.pending.items()
            ]
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending, self.best = {}, {}
        for e in state["jobs"]:
            job = Job.from_dict(e["job"])
            self.pending[job] = list(e["pending"])
            if e["best"] is not None:
                self.best[job] = (float(e["best"][0]), int(e["best"][1]))
