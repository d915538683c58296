"""The shipped measurement data as per-limit measurements, to hold selectors and search strategies to.

Every measurement set of `zeus.device.replay_profiles.measured_profiles` (each profiling log, each
traced workload, optimizer and batch size), at its measured limits only: a step lasts what the replay
GPU replays, and its energy is the power of all the job's GPUs over it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

from zeus.device.replay_profiles import ReplayProfile, measured_profiles
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


def _shipped(profile: ReplayProfile) -> ShippedProfile:
    (curve,) = profile.curves
    gpus = range(len(curve.power_w))
    measurements = tuple(
        PowerLimitMeasurement(
            power_limit_w=limit_w,
            time_per_step_s=step_s,
            energy_per_step_j=sum(curve.power_at(limit_w, g) for g in gpus) * step_s,
        )
        for limit_w, step_s in zip(curve.power_limits_w, curve.step_time_s, strict=True)
    )
    return ShippedProfile(profile.name, measurements, profile.max_power_limit_w, len(gpus))


def shipped_profiles() -> list[ShippedProfile]:
    """Every measurement set, profiling logs and power traces alike."""
    return [_shipped(p) for p in measured_profiles()]


def window_log_profiles() -> list[ShippedProfile]:
    """The per-window profiling logs under ``zeus/data/profiles``."""
    return [_shipped(p) for p in measured_profiles() if not p.batch_sizes]


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
