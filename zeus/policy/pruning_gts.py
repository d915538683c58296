"""The pruning + Gaussian Thompson Sampling batch-size policy: one pure per-job core.

The whole per-job decision state is one :class:`PruningGTSState`, which round-trips through JSON
(``state.to_json()`` / ``PruningGTSState.from_json(text)``; ``to_dict``/``from_dict`` for a JSON
column). The simulator, `ZeusMaster` and the BSO server drive the same three functions:

``new_state(batch_sizes, default_bs, *, seed=None, num_pruning_rounds=2, window_size=0,
prior_mean=0.0, prior_precision=0.0, num_explorations=2) -> PruningGTSState``
    Validates the configuration (`ZeusConfigError` naming the field) and returns a fresh state.

``next_batch_size(state) -> (batch_size, is_exploration)``
    The batch size of the next trial; mutates ``state`` (RNG draws, exploration bookkeeping).
    *Pruning stage*: hands out the next exploration of the current round and marks it in flight
    (``is_exploration=True``). While that exploration is in flight, every further call returns a
    *concurrent* trial at the cheapest known batch size (``is_exploration=False``; the default batch
    size while nothing has converged yet). *Bandit stage*: an arm with fewer than
    ``num_explorations`` observations first, otherwise Gaussian Thompson Sampling over the arms
    (``is_exploration=False``). Raises :class:`NoFeasibleBatchSize` when every batch size tried in
    the first pruning round failed to reach the target.

``observe(state, batch_size, cost, converged, was_exploration) -> None``
    The outcome of a finished trial: its cost (``eta·E + (1 − eta)·MAXPOWER·T``, any positive float)
    and whether it reached the target. Every observation enters the batch size's history (the
    bandit's reward is ``-cost``) and updates ``min_cost``/``min_cost_bs`` when converged. Only the
    observation of the exploration in flight (``was_exploration=True`` and the same batch size)
    advances pruning; anything else is history only. A trial that was abandoned (lease expired) is
    observed as ``converged=False`` with whatever cost it had spent.

``best_batch_size(state) -> int``
    The cheapest known batch size (``min_cost_bs``), or the default before anything converged.

``stage(state) -> str``
    Where the job stands, for hosts that report it: ``pruning``, ``bandit`` or ``infeasible``.

Pruning (``num_pruning_rounds`` rounds): with the round's default ``d`` (first round: ``default_bs``),
try ``d``, then each smaller candidate in descending order until one fails, then each larger one in
ascending order until one fails. The candidates that converged survive into the next round, whose
default is the survivor with the lowest cost in this round. A round in which nothing converged keeps
the previous round's survivors. After the last round the survivors become the bandit's arms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zeus.errors import ZeusConfigError, check_range
from zeus.policy._core import JSONState, check_batch_sizes, decode_rng, encode_rng
from zeus.policy._core import NoFeasibleBatchSize as NoFeasibleBatchSize  # re-exported

STAGE_PRUNING = "pruning"
STAGE_BANDIT = "bandit"
STAGE_INFEASIBLE = "infeasible"
# Where the current pruning round stands: its default not tried yet, going down, going up.
_DEFAULT, _DOWN, _UP = "default", "down", "up"


@dataclass
class PruningGTSState(JSONState):
    """Everything the policy knows about one job. Mutated in place by the module's functions."""

    batch_sizes: list[int]
    default_bs: int
    num_pruning_rounds: int = 2
    window_size: int = 0
    prior_mean: float = 0.0
    prior_precision: float = 0.0
    num_explorations: int = 2
    stage: str = STAGE_PRUNING
    pruning_round: int = 0
    round_candidates: list[int] = field(default_factory=list)
    round_default: int = 0
    direction: str = _DEFAULT
    cursor: int | None = None  # last explored batch size in the current direction
    round_survivors: dict[int, float] = field(default_factory=dict)  # batch size -> cost this round
    survivors: list[int] = field(default_factory=list)  # previous round's, then the bandit's arms
    exploration_in_flight: int | None = None
    infeasible: bool = False
    costs: dict[int, list[float]] = field(
        default_factory=dict
    )  # every observed cost per batch size
    min_cost: float | None = None
    min_cost_bs: int | None = None
    rng_state: dict[str, Any] = field(default_factory=dict)
    _rng: np.random.Generator | None = field(default=None, repr=False, compare=False)
    # Welford running (count, mean, M2) of each arm's costs: costs only grow, so the statistics
    # extend in O(1) and a state rebuilt from JSON recomputes exactly the same numbers.
    _stats: dict[int, tuple[int, float, float]] = field(
        default_factory=dict, repr=False, compare=False
    )
    # Posterior (count, mean, std) per arm, recomputed only when the arm's count changed.
    _posteriors: dict[int, tuple[int, float, float]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = np.random.default_rng()
            self._rng.bit_generator.state = decode_rng(self.rng_state)
        return self._rng

    @property
    def arms(self) -> list[int]:
        """The bandit's arms (empty while pruning)."""
        return list(self.survivors) if self.stage == STAGE_BANDIT else []

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (integer keys become strings; the RNG state is exact)."""
        return {
            "batch_sizes": list(self.batch_sizes),
            "default_bs": self.default_bs,
            "num_pruning_rounds": self.num_pruning_rounds,
            "window_size": self.window_size,
            "prior_mean": self.prior_mean,
            "prior_precision": self.prior_precision,
            "num_explorations": self.num_explorations,
            "stage": self.stage,
            "pruning_round": self.pruning_round,
            "round_candidates": list(self.round_candidates),
            "round_default": self.round_default,
            "direction": self.direction,
            "cursor": self.cursor,
            "round_survivors": {str(b): c for b, c in self.round_survivors.items()},
            "survivors": list(self.survivors),
            "exploration_in_flight": self.exploration_in_flight,
            "infeasible": self.infeasible,
            "costs": {str(b): list(c) for b, c in self.costs.items()},
            "min_cost": self.min_cost,
            "min_cost_bs": self.min_cost_bs,
            "rng_state": encode_rng(self.rng.bit_generator.state),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruningGTSState:
        try:
            fields = dict(data)
            fields["round_survivors"] = {
                int(b): float(c) for b, c in data["round_survivors"].items()
            }
            fields["costs"] = {int(b): [float(x) for x in c] for b, c in data["costs"].items()}
            return cls(**fields)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ZeusConfigError(f"malformed PruningGTSState: {e}") from e


def new_state(
    batch_sizes: list[int],
    default_bs: int,
    *,
    seed: int | None = None,
    num_pruning_rounds: int = 2,
    window_size: int = 0,
    prior_mean: float = 0.0,
    prior_precision: float = 0.0,
    num_explorations: int = 2,
) -> PruningGTSState:
    """A fresh state for a job with these candidate batch sizes (see the module docstring)."""
    sizes = check_batch_sizes(batch_sizes, default_bs)
    check_range("num_pruning_rounds", num_pruning_rounds, ge=0)
    check_range("window_size", window_size, ge=0)
    check_range("prior_precision", prior_precision, ge=0)
    check_range("num_explorations", num_explorations, ge=0)
    rng = np.random.default_rng(seed)
    state = PruningGTSState(
        batch_sizes=sizes,
        default_bs=default_bs,
        num_pruning_rounds=num_pruning_rounds,
        window_size=window_size,
        prior_mean=float(prior_mean),
        prior_precision=float(prior_precision),
        num_explorations=num_explorations,
        round_candidates=list(sizes),
        round_default=default_bs,
        survivors=list(sizes),
        rng_state=encode_rng(rng.bit_generator.state),
    )
    state._rng = rng
    if num_pruning_rounds == 0:
        state.stage = STAGE_BANDIT
    return state


def best_batch_size(state: PruningGTSState) -> int:
    """The cheapest batch size that converged so far, else the default."""
    return state.min_cost_bs if state.min_cost_bs is not None else state.default_bs


def stage(state: PruningGTSState) -> str:
    """``pruning``, ``bandit``, or ``infeasible`` (`next_batch_size` raises `NoFeasibleBatchSize`)."""
    return STAGE_INFEASIBLE if state.infeasible else state.stage


def next_batch_size(state: PruningGTSState) -> tuple[int, bool]:
    """The batch size of the next trial and whether it is a pruning exploration."""
    if state.infeasible:
        raise NoFeasibleBatchSize(
            f"every batch size tried in the first pruning round failed to reach the target "
            f"(candidates {state.batch_sizes}, default {state.default_bs})"
        )
    if state.stage == STAGE_BANDIT:
        return _thompson_sample(state), False
    if state.exploration_in_flight is not None:
        return best_batch_size(state), False
    nxt = _next_in_round(state)
    assert nxt is not None, "a pruning round with nothing left to explore must have ended"
    state.exploration_in_flight = nxt
    return nxt, True


def observe(
    state: PruningGTSState,
    batch_size: int,
    cost: float,
    converged: bool,
    was_exploration: bool,
) -> None:
    """Learn a finished trial's outcome (see the module docstring)."""
    if batch_size not in state.batch_sizes:
        raise ZeusConfigError(f"batch_size {batch_size} is not one of {state.batch_sizes}")
    if not math.isfinite(cost) or cost < 0:
        raise ZeusConfigError(f"cost must be finite and >= 0, got {cost!r}")
    state.costs.setdefault(batch_size, []).append(float(cost))
    if converged and (state.min_cost is None or cost < state.min_cost):
        state.min_cost, state.min_cost_bs = float(cost), batch_size
    if was_exploration and batch_size == state.exploration_in_flight:
        state.exploration_in_flight = None
        _advance_pruning(state, batch_size, cost, converged)


def _next_in_round(state: PruningGTSState) -> int | None:
    """The next batch size to explore in this round, switching direction as needed; None = done."""
    cands, d = state.round_candidates, state.round_default
    if state.direction == _DEFAULT:
        return d
    if state.direction == _DOWN:
        assert state.cursor is not None
        smaller = [b for b in cands if b < state.cursor]
        if smaller:
            return smaller[-1]
        state.direction, state.cursor = _UP, d
    assert state.cursor is not None
    larger = [b for b in cands if b > state.cursor]
    return larger[0] if larger else None


def _advance_pruning(state: PruningGTSState, batch_size: int, cost: float, converged: bool) -> None:
    if converged:
        state.round_survivors[batch_size] = float(cost)
    if state.direction == _DEFAULT:
        state.direction, state.cursor = _DOWN, state.round_default
    elif converged:
        state.cursor = batch_size
    elif state.direction == _DOWN:
        state.direction, state.cursor = _UP, state.round_default
    else:
        state.cursor = None  # the upward search failed: the round is over
    if state.cursor is None or _next_in_round(state) is None:
        _end_round(state)


def _end_round(state: PruningGTSState) -> None:
    if state.round_survivors:
        state.survivors = sorted(state.round_survivors)
        cheapest = min(state.round_survivors, key=lambda b: (state.round_survivors[b], b))
        state.round_default = cheapest
    elif state.pruning_round == 0:
        state.infeasible = True
        return
    state.pruning_round += 1
    state.round_survivors = {}
    state.round_candidates = list(state.survivors)
    state.direction, state.cursor = _DEFAULT, None
    if state.pruning_round >= state.num_pruning_rounds:
        state.stage = STAGE_BANDIT


def _thompson_sample(state: PruningGTSState) -> int:
    """Gaussian Thompson Sampling over the arms; under-observed arms are explored first."""
    arms = state.survivors
    need = max(state.num_explorations, 1)
    counts = [len(state.costs.get(b, ())) for b in arms]
    fewest = min(counts)
    if fewest < need:
        return arms[counts.index(fewest)]
    noise = state.rng.standard_normal(len(arms)).tolist()
    best, best_sample = arms[0], -math.inf
    for b, n, z in zip(arms, counts, noise, strict=True):
        post = state._posteriors.get(b)
        if post is None or post[0] != n:  # the arm got new observations since
            post = (n, *_posterior(state, b))
            state._posteriors[b] = post
        sample = post[1] + post[2] * z
        if sample > best_sample:
            best, best_sample = b, sample
    return best


def _welford(stats: tuple[int, float, float], values: list[float]) -> tuple[int, float, float]:
    n, mean, m2 = stats
    for x in values:
        n += 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
    return n, mean, m2


def _cost_stats(state: PruningGTSState, b: int) -> tuple[int, float, float]:
    """(count, mean, variance) of the costs of ``b`` in the window (all when window_size = 0)."""
    costs = state.costs[b]
    if state.window_size and len(costs) > state.window_size:
        n, mean, m2 = _welford((0, 0.0, 0.0), costs[-state.window_size :])
    else:
        cached = state._stats.get(b, (0, 0.0, 0.0))
        n, mean, m2 = _welford(cached, costs[cached[0] :])
        state._stats[b] = (n, mean, m2)
    return n, mean, m2 / n


def _posterior(state: PruningGTSState, b: int) -> tuple[float, float]:
    """Posterior mean and standard deviation of arm ``b``'s mean reward (reward = -cost)."""
    n, mean_cost, var = _cost_stats(state, b)
    if var <= 0.0:  # identical rewards: the arm's mean is known exactly
        return -mean_cost, 0.0
    reward_prec = 1.0 / var
    post_prec = state.prior_precision + n * reward_prec
    post_mean = (state.prior_precision * state.prior_mean - reward_prec * n * mean_cost) / post_prec
    return post_mean, 1.0 / math.sqrt(post_prec)
