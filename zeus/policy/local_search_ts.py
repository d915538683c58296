"""Local search over neighbouring batch sizes, then Thompson sampling on the cost per reached target.

The paper's policy (`zeus.policy.pruning_gts`) walks every batch size in two pruning rounds, however
little there is to gain. This policy explores only where the evidence points, and prices a failed
try as the user pays for it:

- **Value of a batch size**: its *cost per reached target*, the sum of the costs of all its tries
  (failed ones included) divided by the number that reached the target. A batch size that rarely
  converges is as dear as it really is, and one that never did has no value at all.
- **Local search guided by Thompson sampling**: the default batch size first. Then, before each
  decision, every tried batch size's value is drawn from its posterior; if a batch size drawn within
  ``explore_tolerance`` of the best draw has an untried neighbour (the next smaller candidate first,
  then the next larger), that neighbour is tried; otherwise the best draw runs. Training cost is
  close to unimodal in the batch size, so exploration walks downhill from the default and stops one
  step past the valley; batch sizes far from it are never paid for, and one that only looked bad
  after an unlucky run is drawn again now and then.
- **Posteriors**: Gaussian around the batch size's value, with a relative spread (coefficient of
  variation) shrunk toward the job's pooled spread, itself shrunk toward ``prior_cv``: runs of one
  job differ by a similar fraction whatever the batch size, and the pooled figure is sound long
  before any single batch size has runs enough for its own.
- **Drift**: with ``window_size = k`` only the last ``k`` tries of each batch size count. When the
  costs move, the best batch size changes, and the untried neighbours of the new best are explored.

The per-job state is one :class:`LocalSearchTSState` that round-trips through JSON (``to_dict`` /
``from_dict``, ``to_json`` / ``from_json``), driven by the same four functions as the paper's core:
``new_state``, ``next_batch_size`` (mutates: RNG draws, exploration in flight), ``observe`` and
``best_batch_size``, plus ``stage`` for hosts that report where a job stands. While an exploration
is in flight, ``next_batch_size`` gives concurrent trials the best known batch size
(``is_exploration=False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zeus.errors import ZeusConfigError, check_range
from zeus.policy._core import (
    JSONState,
    NoFeasibleBatchSize,
    check_batch_sizes,
    decode_rng,
    encode_rng,
)

# Stages (`stage`): nothing reached the target yet, or the best batch size has an untried
# neighbour; the best one's neighbours are all tried (Thompson sampling, mostly, from here on);
# every candidate tried and none reached the target (in its window).
STAGE_SEARCH, STAGE_BANDIT, STAGE_INFEASIBLE = "search", "bandit", "infeasible"

PRIOR_DOF = 2.0
"""Weight, in degrees of freedom (runs beyond the first), of ``prior_cv`` in the job's pooled spread
and of the job's spread in each batch size's."""

# Running sums of one batch size's tries: (tries, Σ cost, reached, Σ reached cost, Σ reached cost²).
_Sums = tuple[int, float, int, float, float]
_EMPTY: _Sums = (0, 0.0, 0, 0.0, 0.0)


@dataclass
class LocalSearchTSState(JSONState):
    """Everything the policy knows about one job. Mutated in place by the module's functions."""

    batch_sizes: list[int]
    default_bs: int
    explore_tolerance: float = 0.15
    window_size: int = 0
    prior_cv: float = 0.1
    costs: dict[int, list[float]] = field(default_factory=dict)  # every try, per batch size
    reached: dict[int, list[bool]] = field(default_factory=dict)  # aligned with costs
    exploration_in_flight: int | None = None
    min_cost: float | None = None  # cheapest single run that reached the target (hosts' budget)
    min_cost_bs: int | None = None
    rng_state: dict[str, Any] = field(default_factory=dict)
    _rng: np.random.Generator | None = field(default=None, repr=False, compare=False)
    # Sums over all tries of each batch size, extended in O(1): tries only grow, and a state
    # rebuilt from JSON adds the same numbers in the same order, so it computes the same floats.
    _sums: dict[int, _Sums] = field(default_factory=dict, repr=False, compare=False)

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng()
            self._rng.bit_generator.state = decode_rng(self.rng_state)
        return self._rng

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (integer keys become strings; the RNG state is exact)."""
        return {
            "batch_sizes": list(self.batch_sizes),
            "default_bs": self.default_bs,
            "explore_tolerance": self.explore_tolerance,
            "window_size": self.window_size,
            "prior_cv": self.prior_cv,
            "costs": {str(b): list(c) for b, c in self.costs.items()},
            "reached": {str(b): list(r) for b, r in self.reached.items()},
            "exploration_in_flight": self.exploration_in_flight,
            "min_cost": self.min_cost,
            "min_cost_bs": self.min_cost_bs,
            "rng_state": encode_rng(self.rng.bit_generator.state),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalSearchTSState:
        try:
            fields = dict(data)
            fields["costs"] = {int(b): [float(x) for x in c] for b, c in data["costs"].items()}
            fields["reached"] = {int(b): [bool(x) for x in r] for b, r in data["reached"].items()}
            state = cls(**fields)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ZeusConfigError(f"malformed LocalSearchTSState: {e}") from e
        if any(len(state.costs[b]) != len(state.reached.get(b, ())) for b in state.costs):
            raise ZeusConfigError(
                "malformed LocalSearchTSState: costs and reached differ in length"
            )
        return state


def new_state(
    batch_sizes: list[int],
    default_bs: int,
    *,
    seed: int | None = None,
    explore_tolerance: float = 0.15,
    window_size: int = 0,
    prior_cv: float = 0.1,
) -> LocalSearchTSState:
    """A fresh state for a job with these candidate batch sizes (see the module docstring)."""
    sizes = check_batch_sizes(batch_sizes, default_bs)
    check_range("explore_tolerance", explore_tolerance, ge=0)
    check_range("window_size", window_size, ge=0)
    check_range("prior_cv", prior_cv, gt=0)
    rng = np.random.default_rng(seed)
    state = LocalSearchTSState(
        batch_sizes=sizes,
        default_bs=default_bs,
        explore_tolerance=float(explore_tolerance),
        window_size=int(window_size),
        prior_cv=float(prior_cv),
        rng_state=encode_rng(rng.bit_generator.state),
    )
    state._rng = rng
    return state


def best_batch_size(state: LocalSearchTSState) -> int:
    """The batch size with the lowest cost per reached target, else the default."""
    stats = _arm_stats(state)
    return min(stats, key=lambda b: (stats[b][0], b)) if stats else state.default_bs


def stage(state: LocalSearchTSState) -> str:
    """``search``, ``bandit``, or ``infeasible`` (`next_batch_size` raises `NoFeasibleBatchSize`)."""
    stats = _arm_stats(state)
    sizes = state.batch_sizes
    if not stats:
        untried = any(b not in state.costs for b in sizes)
        idle = state.exploration_in_flight is None
        return STAGE_INFEASIBLE if idle and not untried else STAGE_SEARCH
    i = sizes.index(min(stats, key=lambda b: (stats[b][0], b)))
    neighbours = sizes[max(i - 1, 0) : i + 2]
    return STAGE_SEARCH if any(b not in state.costs for b in neighbours) else STAGE_BANDIT


def next_batch_size(state: LocalSearchTSState) -> tuple[int, bool]:
    """The batch size of the next trial and whether it explores an untried batch size."""
    if state.exploration_in_flight is not None:
        return best_batch_size(state), False
    stats = _arm_stats(state)
    if stats:
        samples = _thompson_samples(state, stats)
        untried = _untried_neighbour(state, samples)
        if untried is None:
            return min(samples, key=lambda b: (samples[b], b)), False
    else:
        untried = _nearest_untried(state)
    state.exploration_in_flight = untried
    return untried, True


def _nearest_untried(state: LocalSearchTSState) -> int:
    """Before anything reached the target: the untried candidate nearest the default."""
    sizes, d = state.batch_sizes, state.batch_sizes.index(state.default_bs)
    for i in sorted(range(len(sizes)), key=lambda i: (abs(i - d), i)):
        if sizes[i] not in state.costs:
            return sizes[i]
    raise NoFeasibleBatchSize(
        f"every batch size failed to reach the target (candidates {sizes}, "
        f"default {state.default_bs})"
    )


def _untried_neighbour(state: LocalSearchTSState, samples: dict[int, float]) -> int | None:
    """An untried neighbour (smaller first) of a batch size sampled within tolerance of the best."""
    sizes = state.batch_sizes
    limit = (1.0 + state.explore_tolerance) * min(samples.values())
    for b in sorted(samples, key=lambda b: (samples[b], b)):
        if samples[b] > limit:
            break
        i = sizes.index(b)
        for j in (i - 1, i + 1):
            if 0 <= j < len(sizes) and sizes[j] not in state.costs:
                return sizes[j]
    return None


def observe(
    state: LocalSearchTSState,
    batch_size: int,
    cost: float,
    converged: bool,
    was_exploration: bool,
) -> None:
    """Learn a finished trial's outcome: its cost (any float >= 0) and whether it reached the target."""
    if batch_size not in state.batch_sizes:
        raise ZeusConfigError(f"batch_size {batch_size} is not one of {state.batch_sizes}")
    if not math.isfinite(cost) or cost < 0:
        raise ZeusConfigError(f"cost must be finite and >= 0, got {cost!r}")
    state.costs.setdefault(batch_size, []).append(float(cost))
    state.reached.setdefault(batch_size, []).append(bool(converged))
    if converged and (state.min_cost is None or cost < state.min_cost):
        state.min_cost, state.min_cost_bs = float(cost), batch_size
    if was_exploration and batch_size == state.exploration_in_flight:
        state.exploration_in_flight = None


def _thompson_samples(
    state: LocalSearchTSState, stats: dict[int, tuple[float, int, float]]
) -> dict[int, float]:
    """One draw of each batch size's cost per reached target from its posterior.

    Each draw is ``value · (1 + cv · z / √reached)``: ``cv`` is the batch size's own spread shrunk
    toward the job's pooled one, which is itself shrunk toward ``prior_cv``.
    """
    arms = sorted(stats)
    job_ss, job_dof = state.prior_cv**2 * PRIOR_DOF, PRIOR_DOF
    for b in arms:
        _, n, ss = stats[b]
        job_ss, job_dof = job_ss + ss, job_dof + n - 1
    job_cv2 = job_ss / job_dof
    noise = state.rng.standard_normal(len(arms)).tolist()
    samples = {}
    for b, z in zip(arms, noise, strict=True):
        value, n, ss = stats[b]
        cv2 = (PRIOR_DOF * job_cv2 + ss) / (PRIOR_DOF + n - 1)
        samples[b] = value * (1.0 + math.sqrt(cv2 / n) * z)
    return samples


def _arm_stats(state: LocalSearchTSState) -> dict[int, tuple[float, int, float]]:
    """Per batch size that reached the target in its window: its value (cost per reached target),
    how many tries reached it, and ``Σ (x / mean − 1)²`` over the costs of those tries."""
    out = {}
    for b in state.costs:
        _, total, n, s1, s2 = _window_sums(state, b)
        if n:
            out[b] = (total / n, n, _relative_ss(n, s1, s2))
    return out


def _relative_ss(n: int, s1: float, s2: float) -> float:
    """``Σ (x / mean − 1)²`` of ``n`` costs from their sum ``s1`` and sum of squares ``s2``."""
    if n < 2 or s1 <= 0:
        return 0.0
    ratio = s2 / s1 / s1  # in this order: s1 * s1 underflows for tiny costs
    return max(n * n * ratio - n, 0.0) if math.isfinite(ratio) else 0.0


def _window_sums(state: LocalSearchTSState, b: int) -> _Sums:
    costs, reached = state.costs[b], state.reached[b]
    w = state.window_size
    if w and len(costs) > w:
        return _accumulate(_EMPTY, costs[-w:], reached[-w:])
    sums = state._sums.get(b, _EMPTY)
    if sums[0] != len(costs):
        sums = _accumulate(sums, costs[sums[0] :], reached[sums[0] :])
        state._sums[b] = sums
    return sums


def _accumulate(sums: _Sums, costs: list[float], reached: list[bool]) -> _Sums:
    n, total, k, s1, s2 = sums
    for c, ok in zip(costs, reached, strict=True):
        n, total = n + 1, total + c
        if ok:
            k, s1, s2 = k + 1, s1 + c, s2 + c * c
    return n, total, k, s1, s2
