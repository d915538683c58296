"""Search strategies: which limits get measured, and the default's bound on the shipped data."""

from __future__ import annotations

import random

import pytest

from tests.optimizer.pl_training import replay_monitor
from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusConfigError
from zeus.optimizer.power_limit import (
    Descend,
    Exhaustive,
    GlobalPowerLimitOptimizer,
    GoldenSection,
    SearchStrategy,
    ZeusCost,
    get_search,
)
from zeus.optimizer.power_limit.search import DEFAULT_SEARCH, STRATEGIES, CoarseToFine
from zeus.optimizer.power_limit.shipped import (
    fixed_set_fraction,
    full_sweep_scores,
    selector_grid,
    separated_minima,
    shipped_profiles,
    simulate_search,
    window_log_profiles,
)

CANDIDATES = [300, 275, 250, 225, 200, 175, 150, 125, 100]


def _walk(strategy: SearchStrategy, curve: dict[int, float]) -> list[int]:
    """The limits the strategy measures, in order, on a known score curve."""
    scores: dict[int, float] = {}
    order = []
    while (next_w := strategy.next_limit(CANDIDATES, scores)) is not None:
        assert next_w not in scores, "a strategy must never ask for a measured limit again"
        order.append(next_w)
        scores[next_w] = curve[next_w]
    return order


def _unimodal(rng: random.Random) -> dict[int, float]:
    """A strictly unimodal curve over CANDIDATES with its minimum anywhere."""
    bottom = rng.randrange(len(CANDIDATES))
    values = [abs(i - bottom) + rng.random() * 0.5 for i in range(len(CANDIDATES))]
    values[bottom] = -1.0
    return dict(zip(CANDIDATES, values, strict=True))


def test_exhaustive_measures_every_limit_from_the_top() -> None:
    curve = dict.fromkeys(CANDIDATES, 1.0)
    assert _walk(Exhaustive(), curve) == CANDIDATES


def test_descend_stops_after_two_rises_past_the_optimum() -> None:
    curve = dict(zip(CANDIDATES, [5, 4, 3, 4, 5, 6, 7, 8, 9], strict=True))
    assert _walk(Descend(patience=2), curve) == [300, 275, 250, 225, 200]
    assert _walk(Descend(patience=1), curve) == [300, 275, 250, 225]


def test_descend_tolerance_ignores_small_bumps() -> None:
    curve = dict(zip(CANDIDATES, [5.0, 4.0, 4.02, 4.03, 3.0, 6, 7, 8, 9], strict=True))
    assert _walk(Descend(patience=2, tolerance=0.0), curve)[-1] == 225  # stopped before 3.0
    assert 200 in _walk(Descend(patience=2, tolerance=0.01), curve)  # found it


def test_coarse_measures_every_other_limit_then_the_neighbours_of_the_best() -> None:
    curve = dict(zip(CANDIDATES, [9, 8, 7, 6, 5, 3, 4, 6, 7], strict=True))
    # grid 300, 250, 200, 150, 100; best 150 (score 4); then 175 and 125
    assert _walk(CoarseToFine(), curve) == [300, 250, 200, 150, 100, 175, 125]
    # the minimum limit is always on the grid, even when the stride skips it
    assert _walk(CoarseToFine(stride=3), curve)[:4] == [300, 225, 150, 100]
    with pytest.raises(ZeusConfigError, match="stride"):
        CoarseToFine(stride=1)


@pytest.mark.parametrize(
    "strategy", [Descend(), GoldenSection(), CoarseToFine()], ids=["descend", "golden", "coarse"]
)
def test_strategies_find_the_minimum_of_unimodal_curves(strategy: SearchStrategy) -> None:
    rng = random.Random(7)
    for _ in range(200):
        curve = _unimodal(rng)
        measured = _walk(strategy, curve)
        assert measured[0] == CANDIDATES[0]  # the maximum first: reference of the slowdown selector
        assert min(measured, key=curve.__getitem__) == min(curve, key=curve.__getitem__)


def test_golden_section_measures_fewer_limits_than_the_sweep() -> None:
    rng = random.Random(3)
    counts = [len(_walk(GoldenSection(), _unimodal(rng))) for _ in range(100)]
    assert max(counts) < len(CANDIDATES)


def test_strategies_are_stateless_and_resume_from_scores() -> None:
    curve = dict(zip(CANDIDATES, [5, 4, 3, 4, 5, 6, 7, 8, 9], strict=True))
    measured_so_far = {limit: curve[limit] for limit in (300, 275, 250)}
    assert Descend().next_limit(CANDIDATES, measured_so_far) == 225


def test_get_search_by_name_and_errors() -> None:
    assert isinstance(get_search("exhaustive"), Exhaustive)
    custom = Descend(patience=3)
    assert get_search(custom) is custom
    with pytest.raises(ZeusConfigError, match="search must be one of"):
        get_search("random")
    with pytest.raises(ZeusConfigError, match="patience"):
        Descend(patience=0)
    with pytest.raises(ZeusConfigError, match="candidates_w"):
        Exhaustive().next_limit([], {})


def test_default_search_stays_within_one_percent_on_every_shipped_profile() -> None:
    """The rule for the default: on every shipped profile, with every selector and eta, the
    limit it picks costs at most 1% more than what the exhaustive sweep picks."""
    strategy = get_search(DEFAULT_SEARCH)
    for profile in shipped_profiles():
        for label, selector in selector_grid():
            outcome = simulate_search(strategy, profile, selector)
            assert outcome.cost_gap <= 0.01, (profile.name, label, outcome)
    plo = GlobalPowerLimitOptimizer(replay_monitor(ReplayGPU("a40-resnet50")))
    assert type(plo.search) is STRATEGIES[DEFAULT_SEARCH]  # what users get without asking


def test_the_reduced_searches_are_not_the_default_because_they_miss_the_bound() -> None:
    """Why ``exhaustive`` is the default: the shipped profiles are noisy (not unimodal), and every
    strategy that skips limits misses the 1% bound somewhere. If one ever meets it, make it the
    default (bench/profiling_cost.py shows the figures)."""
    assert DEFAULT_SEARCH == "exhaustive"
    profiles = shipped_profiles()
    for name in STRATEGIES:
        if name == DEFAULT_SEARCH:
            continue
        strategy = get_search(name)
        worst = max(
            simulate_search(strategy, profile, selector).cost_gap
            for profile in profiles
            for _, selector in selector_grid()
        )
        assert worst > 0.01, f"{name} meets the bound: make it the default"


def test_separated_minima_counts_valleys_deeper_than_the_tolerance() -> None:
    assert separated_minima([5.0, 4.0, 3.0, 4.0, 5.0]) == 1
    assert separated_minima([5.0, 3.0, 4.0, 3.0, 5.0]) == 2
    assert separated_minima([5.0, 3.0, 3.01, 3.0, 5.0]) == 0  # within 1%: one flat valley
    assert separated_minima([5.0, 3.0, 3.01, 3.0, 5.0], tolerance=0.001) == 2


def test_shipped_curves_are_too_noisy_for_any_half_cost_search_with_the_default_selector() -> None:
    """The evidence behind keeping ``exhaustive`` (docs/power-limit.md): with ZeusCost(0.5), about
    a third of the shipped profiles have two valleys more than 1% apart, and no fixed half of the
    limit positions holds a limit within 1% of the best on every profile, even chosen with the data
    in hand."""
    profiles = shipped_profiles()
    selector = ZeusCost(0.5)
    valleys = [separated_minima(full_sweep_scores(profile, selector)) for profile in profiles]
    assert sum(count >= 2 for count in valleys) > len(profiles) // 4
    assert fixed_set_fraction(profiles, selector) > 0.5
    assert fixed_set_fraction(profiles, selector, tolerance=1.0) < 0.5  # loose bounds are easy


def test_simulated_search_counts_and_gaps_are_consistent() -> None:
    profile = window_log_profiles()[0]
    for _, selector in selector_grid():
        full = simulate_search(Exhaustive(), profile, selector)
        assert full.measured == full.candidates == len(profile.measurements)
        assert full.cost_gap == 0.0 and full.chosen_w == full.exhaustive_w
        reduced = simulate_search(Descend(), profile, selector)
        assert reduced.measured <= full.measured and reduced.cost_gap >= 0.0


def test_the_one_reduced_search_within_the_bound_saves_almost_nothing() -> None:
    """Stopping at the first limit 20% costlier than the best meets the 1% bound with the default
    selector, but measures more than 90% of the limits (docs/power-limit.md)."""
    stop = Descend(patience=1, tolerance=0.2)
    outcomes = [simulate_search(stop, profile, ZeusCost(0.5)) for profile in shipped_profiles()]
    assert max(outcome.cost_gap for outcome in outcomes) <= 0.01
    measured = sum(outcome.measured for outcome in outcomes)
    assert measured > 0.9 * sum(outcome.candidates for outcome in outcomes)
