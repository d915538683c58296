"""The pure per-job core of the pruning + Gaussian Thompson Sampling policy."""

from __future__ import annotations

import json

import pytest

from zeus.errors import ZeusConfigError
from zeus.policy import NoFeasibleBatchSize, PruningGTSState
from zeus.policy import pruning_gts as core

SIZES = [8, 16, 32, 64, 128]


def explore(state: PruningGTSState, outcomes: dict[int, tuple[float, bool]]) -> list[int]:
    """Drive the pruning stage with a fixed outcome per batch size; return the order tried."""
    tried = []
    while state.stage == core.STAGE_PRUNING:
        bs, is_exploration = core.next_batch_size(state)
        assert is_exploration
        tried.append(bs)
        cost, ok = outcomes[bs]
        core.observe(state, bs, cost, ok, was_exploration=True)
    return tried


def test_pruning_order_and_survivors() -> None:
    state = core.new_state(SIZES, 32, seed=1)
    assert core.stage(state) == core.STAGE_PRUNING
    outcomes = {
        8: (50.0, False),
        16: (10.0, True),
        32: (20.0, True),
        64: (30.0, True),
        128: (99.0, False),
    }
    tried = explore(state, outcomes)
    # Round 1 from 32: down 16, 8 (fails), then up 64, 128 (fails).
    # Round 2 over the survivors from the cheapest (16): nothing smaller, then up 32, 64.
    assert tried == [32, 16, 8, 64, 128, 16, 32, 64]
    assert state.stage == core.STAGE_BANDIT == core.stage(state)
    assert state.arms == [16, 32, 64]
    assert state.min_cost_bs == 16 and state.min_cost == 10.0


def test_default_failure_does_not_stop_the_round() -> None:
    state = core.new_state(SIZES, 32, seed=1, num_pruning_rounds=1)
    outcomes = {
        8: (5.0, True),
        16: (10.0, True),
        32: (20.0, False),
        64: (30.0, False),
        128: (1.0, True),
    }
    assert explore(state, outcomes) == [32, 16, 8, 64]
    assert state.arms == [8, 16]


def test_concurrent_trial_gets_cheapest_known_and_does_not_advance_pruning() -> None:
    state = core.new_state(SIZES, 32, seed=1)
    assert core.next_batch_size(state) == (32, True)
    # Nothing converged yet: a concurrent trial runs the default.
    assert core.next_batch_size(state) == (32, False)
    core.observe(state, 32, 20.0, True, was_exploration=True)
    assert core.next_batch_size(state) == (16, True)
    assert core.next_batch_size(state) == (32, False)  # cheapest known now
    # The concurrent run finishes first: recorded, but pruning still waits for 16.
    core.observe(state, 32, 15.0, True, was_exploration=False)
    assert state.costs[32] == [20.0, 15.0]
    assert state.exploration_in_flight == 16
    core.observe(state, 16, 12.0, True, was_exploration=True)
    assert core.next_batch_size(state) == (8, True)


def test_every_candidate_failing_raises_no_feasible() -> None:
    state = core.new_state([16, 32, 64], 32, seed=0)
    for _ in range(3):
        bs, _ = core.next_batch_size(state)
        core.observe(state, bs, 100.0, False, was_exploration=True)
    with pytest.raises(NoFeasibleBatchSize, match="failed to reach the target"):
        core.next_batch_size(state)
    # The verdict survives a trip through JSON (the server stores exactly this).
    with pytest.raises(NoFeasibleBatchSize):
        core.next_batch_size(PruningGTSState.from_json(state.to_json()))


def test_json_round_trip_gives_identical_decisions() -> None:
    state = core.new_state(SIZES, 32, seed=7)
    outcomes = {
        8: (50.0, False),
        16: (10.0, True),
        32: (11.0, True),
        64: (12.0, True),
        128: (99.0, False),
    }
    explore(state, outcomes)
    for _ in range(5):  # some bandit history with spread
        bs, _ = core.next_batch_size(state)
        core.observe(state, bs, outcomes[bs][0] * 1.1, True, was_exploration=False)
    text = state.to_json()
    json.loads(text)  # plain JSON
    clone = PruningGTSState.from_json(text)
    assert clone.to_json() == text
    a = [core.next_batch_size(state) for _ in range(30)]
    b = [core.next_batch_size(clone) for _ in range(30)]
    assert a == b
    assert len({bs for bs, _ in a}) > 1  # the sampler really is random


def test_thompson_sampling_prefers_the_cheaper_arm() -> None:
    state = core.new_state([16, 32], 32, seed=3, num_pruning_rounds=0)
    # Under-observed arms come first, fewest observations first.
    assert core.next_batch_size(state)[0] == 16
    for bs, costs in {16: [100.0, 104.0], 32: [200.0, 190.0]}.items():
        for c in costs:
            core.observe(state, bs, c, True, was_exploration=False)
    picks = [core.next_batch_size(state)[0] for _ in range(200)]
    assert picks.count(16) > 190


def test_identical_costs_are_a_known_mean() -> None:
    state = core.new_state([16, 32], 32, seed=3, num_pruning_rounds=0)
    for bs, c in {16: 10.0, 32: 11.0}.items():
        core.observe(state, bs, c, True, was_exploration=False)
        core.observe(state, bs, c, True, was_exploration=False)
    assert {core.next_batch_size(state)[0] for _ in range(50)} == {16}


def test_window_size_forgets_old_rewards() -> None:
    state = core.new_state([16, 32], 32, seed=3, num_pruning_rounds=0, window_size=2)
    for c in [1000.0, 1001.0, 10.0, 11.0]:  # 16 got cheaper recently
        core.observe(state, 16, c, True, was_exploration=False)
    for c in [50.0, 51.0]:
        core.observe(state, 32, c, True, was_exploration=False)
    assert [core.next_batch_size(state)[0] for _ in range(20)].count(16) == 20


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_pruning_rounds": -1}, "num_pruning_rounds"),
        ({"window_size": -2}, "window_size"),
        ({"prior_precision": -1.0}, "prior_precision"),
        ({"num_explorations": -1}, "num_explorations"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ZeusConfigError, match=field):
        core.new_state(SIZES, 32, **kwargs)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    with pytest.raises(ZeusConfigError, match="default batch size 48"):
        core.new_state(SIZES, 48)
    state = core.new_state(SIZES, 32)
    with pytest.raises(ZeusConfigError, match="batch_size 48"):
        core.observe(state, 48, 1.0, True, was_exploration=False)
    with pytest.raises(ZeusConfigError, match="cost"):
        core.observe(state, 32, float("nan"), True, was_exploration=False)
    with pytest.raises(ZeusConfigError, match="malformed"):
        PruningGTSState.from_json('{"batch_sizes": [1]}')
