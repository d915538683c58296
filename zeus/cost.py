"""The one home of Zeus's energy–time cost.

``cost = eta·energy + (1 − eta)·max_power·time`` with energy in J, time in s and ``max_power`` the
maximum power limit in W (times the number of GPUs of a data-parallel job). Every module that needs a
cost holds a :class:`CostModel`, validated once where it is built; ``cost()`` works elementwise on
numpy arrays too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from zeus.errors import check_range

Num = TypeVar("Num", float, npt.NDArray[np.float64])


def check_eta(eta_knob: float) -> None:
    """Raise a clear error unless ``eta_knob`` is in [0, 1]."""
    check_range("eta_knob", eta_knob, ge=0.0, le=1.0)


@dataclass(frozen=True)
class CostModel:
    """The energy–time trade-off of one job: ``eta_knob`` in [0, 1] and the job's ``max_power_w``.

    ``eta_knob=1`` counts energy only, ``0`` time only. ``max_power_w`` is the maximum power limit
    of the job's GPUs summed over them (> 0).
    """

    eta_knob: float
    max_power_w: float

    def __post_init__(self) -> None:
        check_eta(self.eta_knob)
        check_range("max_power_w", self.max_power_w, gt=0.0, lt=float("inf"))

    def cost(self, energy_j: Num, time_s: Num) -> Num:
        """Energy–time cost (J-equivalent) of spending ``energy_j`` over ``time_s``."""
        return self.eta_knob * energy_j + (1.0 - self.eta_knob) * self.max_power_w * time_s


def zeus_cost(energy_j: Num, time_s: Num, eta_knob: float, max_power_w: float) -> Num:
    """Energy–time cost of a run (J-equivalent). ``eta_knob=1`` is pure energy, 0 pure time."""
    return eta_knob * energy_j + (1.0 - eta_knob) * max_power_w * time_s


def epoch_cost(avg_power_w: Num, time_s: Num, eta_knob: float, max_power_w: float) -> Num:
    """Cost of running ``time_s`` at ``avg_power_w``: ``(eta·P + (1−eta)·MAXPOWER)·t``."""
    return (eta_knob * avg_power_w + (1.0 - eta_knob) * max_power_w) * time_s
