"""Compare simulated results with the published simulator's per-seed reference figures.

The reference (``reference/per_seed.csv``, seeds 1–10, eta 0.5, beta 2) comes from the original
Zeus simulator on the bundled traces. Random streams differ, so a cell passes when the difference of
means is within sampling noise: ``|Δmean| <= max(4·SE(Δ), floor)`` with ``SE(Δ)`` from the per-seed
spread of both sides and floors of 1 percentage point (energy saved) and 10% (cumulative regret).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from zeus.simulate.report import Metrics

REFERENCE_CSV = Path(str(resources.files("zeus") / "simulate" / "reference" / "per_seed.csv"))


def load_reference() -> dict[tuple[str, str], dict[str, list[float]]]:
    """Per (dataset, gpu): lists of last-10 energy saving and cumulative regret over seeds."""
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    with REFERENCE_CSV.open(newline="") as f:
        for row in csv.DictReader(f):
            cell = out.setdefault((row["workload"], row["gpu"]), {"energy": [], "regret": []})
            cell["energy"].append(float(row["last10_energy_saving"]))
            cell["regret"].append(float(row["cum_regret_norm"]))
    return out


def _mean_se(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


@dataclass(frozen=True)
class Check:
    """One metric of one cell: our mean, the reference mean, the allowed gap, verdict."""

    ours: float
    reference: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return abs(self.ours - self.reference) <= self.tolerance


def check(ours: list[float], reference: list[float], floor: float) -> Check:
    m1, se1 = _mean_se(ours)
    m2, se2 = _mean_se(reference)
    return Check(m1, m2, max(4 * math.hypot(se1, se2), floor))


def check_cell(dataset: str, gpu: str, results: list[Metrics]) -> tuple[Check, Check]:
    """(energy saved last 10, cumulative regret) checks of one cell against the reference."""
    ref = load_reference()[(dataset, gpu)]
    energy = check([m.last10_energy_saving for m in results], ref["energy"], 0.01)
    ref_regret_mean = sum(ref["regret"]) / len(ref["regret"])
    regret = check([m.cum_regret for m in results], ref["regret"], 0.10 * ref_regret_mean)
    return energy, regret
