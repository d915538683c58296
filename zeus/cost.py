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


def check_eta(eta_knob: float, field: str = "eta_knob") -> float:
    """The one [0, 1] rule for ``eta_knob`` (``field`` names it in the error); returns it.

    `CostModel` applies it; code that learns the job's maximum power later (a driver, a power-limit
    selector, a job file) checks ``eta_knob`` with it up front and builds the `CostModel` then.
    """
    check_range(field, eta_knob, ge=0.0, le=1.0)
    return eta_knob


@dataclass(frozen=True)
class CostModel:
    """The energy–time trade-off of one job: ``eta_knob`` in [0, 1] and the job's ``max_power_w``.

    ``eta_knob=1`` counts energy only, ``0`` time only. ``max_power_w`` is the maximum power limit
    of the job's GPUs summed over them (0 for a job without GPUs: nothing then counts but energy).
    """

    eta_knob: float
    max_power_w: float

    def __post_init__(self) -> None:
        check_eta(self.eta_knob)
        check_range("max_power_w", self.max_power_w, ge=0.0, lt=float("inf"))

    def cost(self, energy_j: Num, time_s: Num) -> Num:
        """Energy–time cost (J-equivalent) of spending ``energy_j`` over ``time_s``."""
        return self.eta_knob * energy_j + (1.0 - self.eta_knob) * self.max_power_w * time_s


def zeus_cost(energy_j: Num, time_s: Num, eta_knob: float, max_power_w: float) -> Num:
    """``CostModel(eta_knob, max_power_w).cost(energy_j, time_s)`` without the checks.

    Kept only for the simulator, the BSO server and the policies until they hold a `CostModel`;
    new code builds a `CostModel`.
    """
    return eta_knob * energy_j + (1.0 - eta_knob) * max_power_w * time_s
