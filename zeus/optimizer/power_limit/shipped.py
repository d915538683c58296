"""The shipped measurement data as per-limit measurements, to hold selectors and search strategies to.

Two sources in ``zeus/data``:

- ``profiles/<GPU>+<model>+gpu<ids>.csv``: one profiling window per power limit (column
  ``window_name`` ends in ``_<limit>``), ``elapsed_time`` in s and ``gpu<i>_energy`` in J per GPU.
  Every window spans the same number of steps, so one window counts as one "step" here.
- ``traces/summary_power_<gpu>.csv``: per (dataset, network, batch size, optimizer) and power limit,
  ``time_per_epoch`` in s and ``average_power`` in W; one epoch counts as one "step".
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from itertools import combinations

from zeus.optimizer.power_limit.search import SearchStrategy
from zeus.optimizer.power_limit.selectors import (
    Energy,
    MaxSlowdownConstraint,
    OptimumSelector,
    PowerLimitMeasurement,
    SelectionContext,
    Time,
    ZeusCost,
)


@dataclass(frozen=True)
class ShippedProfile:
    """Measurements of one workload on one GPU model, with what the cost needs."""

    name: str
    measurements: tuple[PowerLimitMeasurement, ...]
    max_power_limit_w: int
    num_gpus: int

    @property
    def power_limits_w(self) -> list[int]:
        """Measured limits, highest first (the order the optimizer visits them)."""
        return sorted((m.power_limit_w for m in self.measurements), reverse=True)


def _read_data_csv(folder: str, file_name: str) -> list[dict[str, str]]:
    text = resources.files("zeus.data").joinpath(folder).joinpath(file_name).read_text()
    return list(csv.DictReader(io.StringIO(text)))


def _data_file_names(folder: str) -> list[str]:
    return sorted(
        entry.name
        for entry in resources.files("zeus.data").joinpath(folder).iterdir()
        if entry.name.endswith(".csv")
    )


def window_log_profiles() -> list[ShippedProfile]:
    """Every per-window profiling log under ``zeus/data/profiles``."""
    profiles = []
    for file_name in _data_file_names("profiles"):
        rows = _read_data_csv("profiles", file_name)
        energy_columns = [c for c in rows[0] if c.startswith("gpu") and c.endswith("_energy")]
        windows: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for row in rows:
            limit_w = int(row["window_name"].rsplit("_", 1)[1])
            energy_j = sum(float(row[c]) for c in energy_columns)
            windows[limit_w].append((float(row["elapsed_time"]), energy_j))
        measurements = tuple(
            PowerLimitMeasurement(
                power_limit_w=limit_w,
                time_per_step_s=sum(t for t, _ in values) / len(values),
                energy_per_step_j=sum(e for _, e in values) / len(values),
            )
            for limit_w, values in sorted(windows.items())
        )
        profiles.append(
            ShippedProfile(
                name=file_name.removesuffix(".csv"),
                measurements=measurements,
                max_power_limit_w=max(windows),
                num_gpus=len(energy_columns),
            )
        )
    return profiles


def power_trace_profiles() -> list[ShippedProfile]:
    """Every (workload, batch size, optimizer) of the ``summary_power_<gpu>.csv`` traces."""
    profiles = []
    for file_name in _data_file_names("traces"):
        if not file_name.startswith("summary_power_"):
            continue
        gpu = file_name.removeprefix("summary_power_").removesuffix(".csv")
        rows = _read_data_csv("traces", file_name)
        max_limit_w = max(int(row["power_limit"]) for row in rows)
        groups: dict[str, list[PowerLimitMeasurement]] = defaultdict(list)
        for row in rows:
            key = (
                f"{gpu}-{row['dataset']}-{row['network']}-bs{row['batch_size']}-{row['optimizer']}"
            )
            time_s = float(row["time_per_epoch"])
            groups[key].append(
                PowerLimitMeasurement(
                    power_limit_w=int(row["power_limit"]),
                    time_per_step_s=time_s,
                    energy_per_step_j=float(row["average_power"]) * time_s,
                )
            )
        for key, measurements in sorted(groups.items()):
            measurements.sort(key=lambda m: m.power_limit_w)
            profiles.append(ShippedProfile(key, tuple(measurements), max_limit_w, 1))
    return profiles


def shipped_profiles() -> list[ShippedProfile]:
    """Window logs first, then power traces."""
    return window_log_profiles() + power_trace_profiles()


def selector_grid() -> list[tuple[str, OptimumSelector]]:
    """Every selector configuration the search strategies are held to (eta in steps of 0.05)."""
    grid: list[tuple[str, OptimumSelector]] = [("Energy", Energy()), ("Time", Time())]
    grid += [(f"ZeusCost({i / 20:g})", ZeusCost(i / 20)) for i in range(21)]
    grid += [
        (f"MaxSlowdown({f:g})", MaxSlowdownConstraint(f)) for f in (1.0, 1.05, 1.1, 1.2, 1.5, 2.0)
    ]
    return grid


@dataclass(frozen=True)
class SearchOutcome:
    """What a search strategy does on one profile with one selector, next to the exhaustive sweep."""

    measured: int
    """Limits the strategy measured."""
    candidates: int
    """Limits the exhaustive sweep measures."""
    chosen_w: int
    exhaustive_w: int
    cost_gap: float
    """Relative excess of the chosen limit's score over the exhaustive choice's (0.01 = 1%)."""


def simulate_search(
    strategy: SearchStrategy, profile: ShippedProfile, selector: OptimumSelector
) -> SearchOutcome:
    """Replay ``strategy`` on the profile's measurements, the way the optimizer drives it."""
    context = SelectionContext(profile.max_power_limit_w, profile.num_gpus)
    by_limit = {m.power_limit_w: m for m in profile.measurements}
    measured: list[PowerLimitMeasurement] = []
    while True:
        scores = selector.scores(measured, context) if measured else {}
        next_w = strategy.next_limit(profile.power_limits_w, scores)
        if next_w is None:
            break
        measured.append(by_limit[next_w])
    all_scores = selector.scores(profile.measurements, context)
    chosen_w = selector.select(measured, context)
    exhaustive_w = selector.select(profile.measurements, context)
    best = all_scores[exhaustive_w]
    gap = all_scores[chosen_w] / best - 1.0 if best > 0 else 0.0
    return SearchOutcome(len(measured), len(profile.measurements), chosen_w, exhaustive_w, gap)


# -- why no reduced search can be the default: how noisy the shipped cost curves are --------------


def full_sweep_scores(profile: ShippedProfile, selector: OptimumSelector) -> list[float]:
    """The selector's score of every limit of the profile, highest limit first, from the full sweep."""
    context = SelectionContext(profile.max_power_limit_w, profile.num_gpus)
    scores = selector.scores(profile.measurements, context)
    return [scores[limit_w] for limit_w in profile.power_limits_w]


def separated_minima(scores: list[float], tolerance: float = 0.01) -> int:
    """Local minima of a score curve that beat each neighbour by more than ``tolerance``.

    A unimodal curve has at most one; two or more mean that a search following the slope can settle
    in the wrong valley.
    """
    return sum(
        all(
            scores[index] * (1.0 + tolerance) < scores[other]
            for other in (index - 1, index + 1)
            if 0 <= other < len(scores)
        )
        for index in range(len(scores))
    )


def fixed_set_fraction(
    profiles: list[ShippedProfile], selector: OptimumSelector, tolerance: float = 0.01
) -> float:
    """Fraction of the limits that the smallest fixed set of positions must hold to contain, on
    every profile, a limit within ``tolerance`` of the best one (by sweep length, step-weighted).

    Positions count from the maximum limit and the set is chosen per sweep length with the shipped
    data in hand, so this is what a non-adaptive search would need even if tuned on these profiles.
    """
    curves_by_length: dict[int, list[list[float]]] = defaultdict(list)
    for profile in profiles:
        curve = full_sweep_scores(profile, selector)
        curves_by_length[len(curve)].append(curve)
    needed = total = 0
    for length, curves in curves_by_length.items():
        total += length * len(curves)
        needed += _smallest_cover(length, curves, tolerance) * len(curves)
    return needed / total


def _smallest_cover(length: int, curves: list[list[float]], tolerance: float) -> int:
    good = [
        {i for i, s in enumerate(curve) if s <= min(curve) * (1.0 + tolerance)} for curve in curves
    ]
    for size in range(1, length):
        for positions in combinations(range(length), size):
            if all(good_set.intersection(positions) for good_set in good):
                return size
    return length
