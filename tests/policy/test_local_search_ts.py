"""The local search + Thompson sampling batch-size policy: its pure core and its invariants."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zeus.errors import ZeusConfigError
from zeus.policy import (
    LocalSearchTSBatchSizeOptimizer,
    LocalSearchTSState,
    NoFeasibleBatchSize,
    PruningGTSBatchSizeOptimizer,
)
from zeus.policy import local_search_ts as core
from zeus.simulate.drift import default_scenario, run_drift_scenario

SIZES = [8, 16, 32, 64, 128, 256]
# A valley at 32: every step away costs more, and the far ends much more.
VALLEY = {8: 3.0, 16: 1.6, 32: 1.0, 64: 1.5, 128: 2.5, 256: 4.0}


def drive(state: LocalSearchTSState, cost_of: dict[int, float], steps: int) -> list[int]:
    """Serial host: each trial is observed before the next is asked for."""
    chosen = []
    for _ in range(steps):
        bs, exploring = core.next_batch_size(state)
        chosen.append(bs)
        core.observe(state, bs, cost_of[bs], True, exploring)
    return chosen


def test_local_search_walks_into_the_valley_and_never_pays_for_the_far_ends() -> None:
    state = core.new_state(SIZES, 64, seed=3)
    chosen = drive(state, VALLEY, 60)
    assert chosen[:3] == [64, 32, 16]  # the default, then downhill, one step past the valley
    assert set(chosen) == {16, 32, 64}  # 8, 128 and 256 are never tried
    assert chosen[-20:] == [32] * 20
    assert core.best_batch_size(state) == 32


def test_an_uphill_first_step_turns_the_search_around() -> None:
    costs = {8: 4.0, 16: 3.0, 32: 2.0, 64: 1.5, 128: 1.0, 256: 1.3}
    chosen = drive(core.new_state(SIZES, 32, seed=1), costs, 40)
    assert chosen[:5] == [32, 16, 64, 128, 256]
    assert 8 not in chosen
    assert chosen[-10:] == [128] * 10


def test_failures_are_priced_per_reached_target() -> None:
    state = core.new_state([16, 32], 32, seed=0)
    for _ in range(3):  # 16 costs 1 per try but reaches the target once in three: 3 per success
        core.observe(state, 16, 1.0, False, False)
        core.observe(state, 16, 1.0, False, False)
        core.observe(state, 16, 1.0, True, False)
        core.observe(state, 32, 2.0, True, False)
    assert core.best_batch_size(state) == 32
    assert state.min_cost == 1.0 and state.min_cost_bs == 16  # the hosts' budget: cheapest run


def test_without_any_success_it_tries_outward_from_the_default_then_gives_up() -> None:
    state = core.new_state(SIZES, 64, seed=0)
    tried = []
    with pytest.raises(NoFeasibleBatchSize, match="every batch size failed"):
        while True:
            bs, exploring = core.next_batch_size(state)
            assert exploring
            tried.append(bs)
            core.observe(state, bs, 1.0, False, exploring)
    assert tried == [64, 32, 128, 16, 256, 8]


def test_concurrent_trials_get_the_best_known_while_an_exploration_is_in_flight() -> None:
    state = core.new_state(SIZES, 64, seed=0)
    drive(state, VALLEY, 1)
    assert core.next_batch_size(state) == (32, True)
    assert core.next_batch_size(state) == (64, False)  # concurrent: best known, not an exploration
    core.observe(state, 64, 1.5, True, False)  # history only; 32 is still in flight
    assert state.exploration_in_flight == 32
    core.observe(state, 32, 1.0, True, True)
    assert state.exploration_in_flight is None and core.best_batch_size(state) == 32


def test_serial_wrapper_hands_out_an_unobserved_exploration_again() -> None:
    policy = LocalSearchTSBatchSizeOptimizer(seed=1)
    job = default_scenario().job()
    policy.register_job(job, [32, 64, 128])
    assert [policy.predict(job), policy.predict(job)] == [64, 64]
    concurrent = LocalSearchTSBatchSizeOptimizer(seed=1, concurrency=True)
    concurrent.register_job(job, [32, 64, 128])
    assert [concurrent.predict(job), concurrent.predict(job)] == [64, 64]  # nothing known yet
    concurrent.observe(job, 64, 1.0, True)
    assert [concurrent.predict(job), concurrent.predict(job)] == [32, 64]


def test_same_seed_same_decisions_other_seed_other_decisions() -> None:
    rng_costs = np.random.default_rng(0).uniform(0.9, 1.1, size=200).tolist()

    def run(seed: int) -> list[int]:
        state = core.new_state(SIZES, 64, seed=seed)
        out = []
        for c in rng_costs:
            bs, exploring = core.next_batch_size(state)
            out.append(bs)
            core.observe(state, bs, c * (1 + abs(bs - 48) / 200), True, exploring)
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)


# Outcomes per step: (cost factor, reached), applied to whatever batch size the policy chose.
outcomes = st.lists(
    st.tuples(st.floats(0.0, 50.0, allow_nan=False), st.booleans()), min_size=1, max_size=60
)


@given(
    sizes=st.lists(st.integers(1, 4096), min_size=1, max_size=12, unique=True),
    default_index=st.integers(0, 11),
    window=st.integers(0, 6),
    seed=st.integers(0, 2**32),
    steps=outcomes,
    split=st.integers(0, 60),
)
@settings(max_examples=150, deadline=None, database=None, derandomize=True)
def test_invariants_under_arbitrary_outcomes(
    sizes: list[int],
    default_index: int,
    window: int,
    seed: int,
    steps: list[tuple[float, bool]],
    split: int,
) -> None:
    """Never outside the candidates; a state rebuilt from JSON at any point decides the same."""
    default = sizes[default_index % len(sizes)]
    state = core.new_state(sizes, default, seed=seed, window_size=window)
    twin: LocalSearchTSState | None = None
    for i, (cost, reached) in enumerate(steps):
        if i == split:
            twin = LocalSearchTSState.from_json(state.to_json())
        try:
            bs, exploring = core.next_batch_size(state)
        except NoFeasibleBatchSize:
            assert window or not any(any(r) for r in state.reached.values())
            if twin is not None:
                with pytest.raises(NoFeasibleBatchSize):
                    core.next_batch_size(twin)
            return
        assert bs in sizes
        if twin is not None:
            assert core.next_batch_size(twin) == (bs, exploring)
            core.observe(twin, bs, cost * bs, reached, exploring)
        core.observe(state, bs, cost * bs, reached, exploring)
    if twin is not None:
        assert twin.to_dict() == state.to_dict()


def test_state_round_trips_through_json_exactly() -> None:
    state = core.new_state(SIZES, 64, seed=7, window_size=4, explore_tolerance=0.2)
    drive(state, VALLEY, 25)
    text = state.to_json()
    clone = LocalSearchTSState.from_json(text)
    assert clone.to_json() == text
    assert drive(clone, VALLEY, 30) == drive(state, VALLEY, 30)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "JSON is malformed"),
        ('{"batch_sizes": [1]}', "malformed LocalSearchTSState"),
        (
            json.dumps(
                {**core.new_state([1, 2], 1).to_dict(), "reached": {"1": []}, "costs": {"1": [1.0]}}
            ),
            "costs and reached differ",
        ),
    ],
)
def test_malformed_state_is_a_clear_error(text: str, match: str) -> None:
    with pytest.raises(ZeusConfigError, match=match):
        LocalSearchTSState.from_json(text)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"explore_tolerance": -0.1}, "explore_tolerance must be >= 0"),
        ({"window_size": -1}, "window_size must be >= 0"),
        ({"prior_cv": 0.0}, "prior_cv must be > 0"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ZeusConfigError, match=match):
        LocalSearchTSBatchSizeOptimizer(**kwargs)  # type: ignore[arg-type]


def test_bad_observations_are_refused() -> None:
    state = core.new_state(SIZES, 64)
    with pytest.raises(ZeusConfigError, match="batch_size 7 is not one of"):
        core.observe(state, 7, 1.0, True, False)
    with pytest.raises(ZeusConfigError, match="cost must be finite"):
        core.observe(state, 64, float("nan"), True, False)
    assert state.costs == {}


def test_drift_windowed_follows_the_new_optimum_at_least_as_well_as_the_paper() -> None:
    """The windowed scenario of examples/drift must not get worse than with the paper's policy."""
    scenario = default_scenario()

    def share_after_shift(make: type, seed: int) -> float:
        trace = run_drift_scenario(make(seed=seed, window_size=5), scenario, seed)
        return trace.share_of_optimum(scenario, scenario.shift_at)

    ours = [share_after_shift(LocalSearchTSBatchSizeOptimizer, s) for s in range(10)]
    paper = [share_after_shift(PruningGTSBatchSizeOptimizer, s) for s in range(10)]
    assert np.mean(ours) >= np.mean(paper)
    assert np.mean(ours) > 0.75
