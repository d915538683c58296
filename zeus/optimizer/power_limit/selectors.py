"""Optimum selectors: which measured power limit to apply.

A selector is pure: it turns per-limit measurements into a score per limit (lower is better,
``inf`` = not allowed) and picks the lowest. The search strategies (`zeus.optimizer.power_limit.search`)
walk the same scores to decide which limits are worth measuring at all, so a new selector works with
every strategy for free.

Write your own by subclassing `OptimumSelector` and implementing `scores`::

    class EnergyUnderDeadline(OptimumSelector):
        def __init__(self, max_time_per_step_s: float) -> None:
            self.max_time_per_step_s = max_time_per_step_s

        def scores(self, measurements, context):
            return {
                m.power_limit_w: m.energy_per_step_j
                if m.time_per_step_s <= self.max_time_per_step_s
                else math.inf
                for m in measurements
            }
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zeus.cost import CostModel, check_eta
from zeus.errors import ZeusConfigError, check_range
from zeus.policy.power_limit import cheapest_limit


@dataclass(frozen=True)
class PowerLimitMeasurement:
    """What one power limit costs per training step, summed over every GPU of the job, and the
    hottest and throttled the GPUs ran meanwhile (None: not recorded, e.g. replay GPUs)."""

    power_limit_w: int
    time_per_step_s: float
    energy_per_step_j: float
    max_temperature_c: float | None = None
    """Hottest reading of any GPU of the job while the limit was measured."""
    throttle_reasons: tuple[str, ...] | None = None
    """Every throttle reason (`zeus.device.base.ThrottleReason`) seen meanwhile, sorted."""

    @property
    def avg_power_w(self) -> float:
        """Average power of all GPUs together while running at this limit."""
        return self.energy_per_step_j / self.time_per_step_s

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "power_limit_w": self.power_limit_w,
            "time_per_step_s": self.time_per_step_s,
            "energy_per_step_j": self.energy_per_step_j,
        }
        if self.max_temperature_c is not None:
            data["max_temperature_c"] = self.max_temperature_c
        if self.throttle_reasons is not None:
            data["throttle_reasons"] = list(self.throttle_reasons)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PowerLimitMeasurement:
        temperature = data.get("max_temperature_c")
        reasons = data.get("throttle_reasons")
        return cls(
            power_limit_w=int(data["power_limit_w"]),
            time_per_step_s=float(data["time_per_step_s"]),
            energy_per_step_j=float(data["energy_per_step_j"]),
            max_temperature_c=None if temperature is None else float(temperature),
            throttle_reasons=None if reasons is None else tuple(sorted(map(str, reasons))),
        )


@dataclass(frozen=True)
class SelectionContext:
    """Facts about the job a selector may need besides the measurements."""

    max_power_limit_w: int
    """The GPUs' maximum power limit (MAXPOWER of the cost)."""
    num_gpus: int = 1
    """GPUs of the whole job (all ranks of a data-parallel job)."""


class OptimumSelector(ABC):
    """Chooses the power limit to apply from per-limit measurements."""

    @abstractmethod
    def scores(
        self, measurements: Sequence[PowerLimitMeasurement], context: SelectionContext
    ) -> dict[int, float]:
        """Score of every measured limit: lower is better, ``math.inf`` means not allowed."""

    def select(
        self, measurements: Sequence[PowerLimitMeasurement], context: SelectionContext
    ) -> int:
        """The best-scoring limit; ties go to the lower limit (less power for the same score)."""
        if not measurements:
            raise ZeusConfigError("measurements must not be empty to select a power limit")
        return cheapest_limit(self.scores(measurements, context))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Energy(OptimumSelector):
    """Least energy per step, whatever the slowdown."""

    def scores(
        self, measurements: Sequence[PowerLimitMeasurement], context: SelectionContext
    ) -> dict[int, float]:
        return {m.power_limit_w: m.energy_per_step_j for m in measurements}


class Time(OptimumSelector):
    """Shortest time per step, whatever the energy."""

    def scores(
        self, measurements: Sequence[PowerLimitMeasurement], context: SelectionContext
    ) -> dict[int, float]:
        return {m.power_limit_w: m.time_per_step_s for m in measurements}


class ZeusCost(OptimumSelector):
    """Least energy–time cost per step: ``(eta·P + (1−eta)·MAXPOWER·N_gpus) / throughput``.

    ``world_size`` is the number of GPUs of the job; None takes it from the optimizer (all GPUs of
    every rank), which is what you want unless you model a job shape you are not running.
    """

    def __init__(self, eta_knob: float = 0.5, world_size: int | None = None) -> None:
        check_eta(eta_knob)
        if world_size is not None:
            check_range("world_size", world_size, ge=1)
        self.eta_knob = eta_knob
        self.world_size = world_size

    def scores(
        self, measurements: Sequence[PowerLimitMeasurement], context: SelectionContext
    ) -> dict[int, float]:
        num_gpus = self.world_size if self.world_size is not None else context.num_gpus
        model = CostModel(self.eta_knob, float(context.max_power_limit_w * num_gpus))
        return {
            m.power_limit_w: model.cost(m.energy_per_step_j, m.time_per_step_s)
            for m in measurements
        }


class MaxSlowdownConstraint(OptimumSelector):
    """Least energy among limits at most ``factor`` times slower than at the maximum limit.

    The reference is the time per step at the highest measured limit (the unthrottled GPU).
    """

    def __init__(self, factor: float) -> None:
        check_range("factor", factor, ge=1.0)
        self.factor = factor

    def scores(
        self, measurements: Sequence[PowerLimitMeasurement], context: SelectionContext
    ) -> dict[int, float]:
        reference = max(measurements, key=lambda m: m.power_limit_w).time_per_step_s
        allowed_s = reference * self.factor
        return {
            m.power_limit_w: m.energy_per_step_j if m.time_per_step_s <= allowed_s else math.inf
            for m in measurements
        }


def choose_power_limit(
    measurements: Sequence[PowerLimitMeasurement] | Mapping[int, tuple[float, float]],
    selector: OptimumSelector,
    max_power_limit_w: int,
    num_gpus: int = 1,
) -> int:
    """The pure core: which limit ``selector`` picks from measured data.

    ``measurements``: `PowerLimitMeasurement` objects, or ``{limit_w: (avg_power_w,
    time_per_step_s)}`` with power summed over the job's GPUs.
    """
    if isinstance(measurements, Mapping):
        measurements = [
            PowerLimitMeasurement(int(limit_w), time_s, power_w * time_s)
            for limit_w, (power_w, time_s) in measurements.items()
        ]
    context = SelectionContext(max_power_limit_w=max_power_limit_w, num_gpus=num_gpus)
    return selector.select(measurements, context)
