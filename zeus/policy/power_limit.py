"""The built-in power-limit policy: just-in-time profiling, then the cheapest limit per batch size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zeus.job import Job
from zeus.policy.base import PowerLimitOptimizer


def cheapest_limit(costs: Mapping[int, float]) -> int:
    """The power limit with the lowest cost; ties go to the lower limit (same cost, less power).

    The one rule for choosing among measured limits: the simulator's JIT policy and the selectors of
    real training (`zeus.optimizer.power_limit.OptimumSelector.select`) both call it.
    """
    return min(costs, key=lambda limit: (costs[limit], limit))


class JITPowerLimitOptimizer(PowerLimitOptimizer):
    """Remembers the per-epoch cost of every profiled power limit of each (job, batch size).

    ``predict`` returns None until a (job, batch size) was profiled, then the limit with the lowest
    per-epoch cost ``(eta·P(p) + (1 − eta)·MAXPOWER)·t(p)`` (`cheapest_limit`: ties go to the lower
    limit). The epoch count to reach the target does not depend on the limit, so this also
    minimises the cost of the whole run.
    """

    def __init__(self) -> None:
        self.epoch_costs: dict[tuple[Job, int], dict[int, float]] = {}

    def predict(self, job: Job, batch_size: int) -> int | None:
        costs = self.epoch_costs.get((job, batch_size))
        if not costs:
            return None
        return cheapest_limit(costs)

    def observe(self, job: Job, batch_size: int, power_limit: int, cost: float) -> None:
        self.epoch_costs.setdefault((job, batch_size), {})[int(power_limit)] = float(cost)

    def state_dict(self) -> dict[str, Any]:
        return {
            "entries": [
                {
                    "job": job.to_dict(),
                    "batch_size": bs,
                    "costs": [[p, c] for p, c in costs.items()],
                }
                for (job, bs), costs in self.epoch_costs.items()
            ]
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch_costs = {
            (Job.from_dict(e["job"]), int(e["batch_size"])): {
                int(p): float(c) for p, c in e["costs"]
            }
            for e in state["entries"]
        }
