"""The two extension interfaces for optimization policies.

Policies are pure: no I/O, no printing, randomness only from a seeded generator they own, and state
that round-trips through JSON (``state_dict``/``load_state_dict``). The simulator, `ZeusMaster` and the
batch size optimizer server all drive the same policy objects through these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from zeus.job import Job


class BatchSizeOptimizer(ABC):
    """Chooses the batch size of each recurrence of a job."""

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def register_job(self, job: Job, batch_sizes: list[int]) -> None:
        """Declare the candidate batch sizes of ``job`` (``job.default_bs`` must be among them)."""

    @abstractmethod
    def predict(self, job: Job) -> int:
        """The batch size for the next recurrence of ``job``."""

    @abstractmethod
    def observe(
        self, job: Job, batch_size: int, cost: float, converged: bool | None = None
    ) -> None:
        """Learn the outcome of a run: its cost, and whether it reached the target."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; restoring it reproduces every later decision."""
        raise NotImplementedError(f"{self.name} does not support state_dict()")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"{self.name} does not support load_state_dict()")


class PowerLimitOptimizer(ABC):
    """Chooses the GPU power limit for a (job, batch size)."""

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def predict(self, job: Job, batch_size: int) -> int | None:
        """The power limit to use, or None when this batch size has not been profiled yet."""

    @abstractmethod
    def observe(self, job: Job, batch_size: int, power_limit: int, cost: float) -> None:
        """Learn the per-epoch cost of running ``batch_size`` at ``power_limit``."""

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError(f"{self.name} does not support state_dict()")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"{self.name} does not support load_state_dict()")
