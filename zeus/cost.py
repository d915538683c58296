"""The one home of Zeus's energy–time cost.

``cost = eta·energy + (1 − eta)·max_power·time`` with energy in J, time in s and ``max_power`` the
maximum power limit in W (times the number of GPUs of a data-parallel job). Every module that needs a
cost calls :func:`zeus_cost`; works elementwise on numpy arrays too.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

from zeus.errors import check_range

Num = TypeVar("Num", float, npt.NDArray[np.float64])


def check_eta(eta_knob: float) -> None:
    """Raise a clear error unless ``eta_knob`` is in [0, 1]."""
    check_range("eta_knob", eta_knob, ge=0.0, le=1.0)


def zeus_cost(energy_j: Num, time_s: Num, eta_knob: float, max_power_w: float) -> Num:
    """Energy–time cost of a run (J-equivalent). ``eta_knob=1`` is pure energy, 0 pure time."""
    return eta_knob * energy_j + (1.0 - eta_knob) * max_power_w * time_s


def epoch_cost(avg_power_w: Num, time_s: Num, eta_knob: float, max_power_w: float) -> Num:
    """Cost of running ``time_s`` at ``avg_power_w``: ``(eta·P + (1−eta)·MAXPOWER)·t``."""
    return (eta_knob * avg_power_w + (1.0 - eta_knob) * max_power_w) * time_s
