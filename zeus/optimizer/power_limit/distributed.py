"""Agreement between the ranks of a data-parallel job, with collectives that cannot hang forever.

Contract: every rank calls every `GlobalPowerLimitOptimizer` hook, in the same order, the same number
of times. The optimizer exchanges data only while it is still profiling (at its start, at the end of
every measurement window and at epoch ends), over its own gloo group created with a timeout. When a
rank is missing or out of step, the others get a `ZeusDistributedError` that names the hook and the
ranks instead of waiting forever.

torch is imported only when the training process already imported it.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import Any

from zeus.errors import ZeusError

logger = logging.getLogger(__name__)

_CONTRACT = "every rank must call every GlobalPowerLimitOptimizer hook in the same order"


class ZeusDistributedError(ZeusError, RuntimeError):
    """The ranks of a data-parallel job did not call the optimizer's hooks in lockstep."""


class Coordinator:
    """A job of one process: every collective is the identity."""

    rank: int = 0
    world_size: int = 1

    def gather(self, hook: str, row: list[float]) -> list[list[float]]:
        """Every rank's ``row``, in rank order (all rows have the same length)."""
        return [row]

    def broadcast(self, hook: str, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank."""
        return values

    def broadcast_object(self, hook: str, obj: Any) -> Any:
        """Rank 0's picklable ``obj`` on every rank."""
        return obj

    def gather_in_lockstep(
        self, hook: str, counters: list[float], values: list[float] | None = None
    ) -> list[list[float]]:
        """Gather ``values`` of every rank; raise unless every rank reports the same ``counters``."""
        values = values or []
        rows = self.gather(hook, counters + values)
        width = len(counters)
        for rank, row in enumerate(rows):
            if row[:width] != rows[0][:width]:
                raise ZeusDistributedError(
                    f"ranks out of step in {hook}: rank 0 has called the hooks "
                    f"{_describe(rows[0][:width])}, rank {rank} {_describe(row[:width])}; "
                    f"{_CONTRACT}"
                )
        return [row[width:] for row in rows]


_COUNTER_NAMES = ("on_epoch_begin", "on_epoch_end", "on_step_begin", "on_step_end")


def _describe(counters: list[float]) -> str:
    return ", ".join(f"{name} {int(n)}x" for name, n in zip(_COUNTER_NAMES, counters, strict=True))


class TorchCoordinator(Coordinator):
    """Collectives over a dedicated gloo group whose operations time out."""

    def __init__(self, timeout_s: float) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.timeout_s = timeout_s
        try:
            self._group = dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s))
        except RuntimeError as error:
            raise self._error("creating its process group", error) from error

    def _error(self, hook: str, cause: BaseException) -> ZeusDistributedError:
        return ZeusDistributedError(
            f"rank {self.rank}: GlobalPowerLimitOptimizer.{hook} got no answer from the other "
            f"ranks within {self.timeout_s:g} s (a rank called it late, not at all, or died); "
            f"{_CONTRACT}. Cause: {cause}"
        )

    def gather(self, hook: str, row: list[float]) -> list[list[float]]:
        import torch

        mine = torch.tensor(row, dtype=torch.float64)
        rows = [torch.empty_like(mine) for _ in range(self.world_size)]
        try:
            self._dist.all_gather(rows, mine, group=self._group)
        except RuntimeError as error:
            raise self._error(hook, error) from error
        return [[float(v) for v in r.tolist()] for r in rows]

    def broadcast(self, hook: str, values: list[float]) -> list[float]:
        import torch

        tensor = torch.tensor(values, dtype=torch.float64)
        try:
            self._dist.broadcast(tensor, src=0, group=self._group)
        except RuntimeError as error:
            raise self._error(hook, error) from error
        return [float(v) for v in tensor.tolist()]

    def broadcast_object(self, hook: str, obj: Any) -> Any:
        box = [obj]
        try:
            self._dist.broadcast_object_list(box, src=0, group=self._group)
        except RuntimeError as error:
            raise self._error(hook, error) from error
        return box[0]


def make_coordinator(timeout_s: float) -> Coordinator:
    """A `TorchCoordinator` under an initialised multi-process torch.distributed job, else a no-op."""
    if "torch" not in sys.modules:
        return Coordinator()
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return Coordinator()
    logger.info(
        "data-parallel job: rank %d of %d takes part in power-limit decisions",
        dist.get_rank(),
        dist.get_world_size(),
    )
    return TorchCoordinator(timeout_s)
