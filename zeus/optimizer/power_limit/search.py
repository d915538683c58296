"""Search strategies: which power limit to measure next.

A strategy is stateless: given the candidate limits (highest first) and the scores of the limits
measured so far (lower is better, from the selector), it names the next limit to measure, or None
when it has seen enough. Because the decision is a function of the measurements alone, a run can be
checkpointed, resumed, or fed a saved profile, and every rank of a data-parallel job agrees.

Each strategy is written as a plain search over ``score_of(limit)``; asking for a limit that has not
been measured yet stops the search and returns that limit as the next one to measure.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

from zeus.errors import ZeusConfigError, check_range

ScoreOf = Callable[[int], float]


class _NeedMeasurement(Exception):
    def __init__(self, limit_w: int) -> None:
        super().__init__(limit_w)
        self.limit_w = limit_w


class SearchStrategy(ABC):
    """Decides which candidate limit to measure next from the scores measured so far."""

    name: str = ""

    def next_limit(self, candidates_w: Sequence[int], scores: Mapping[int, float]) -> int | None:
        """The next limit to measure, or None when done. ``candidates_w`` is highest first."""
        if not candidates_w:
            raise ZeusConfigError("candidates_w must not be empty")

        def score_of(limit_w: int) -> float:
            if limit_w not in scores:
                raise _NeedMeasurement(limit_w)
            return scores[limit_w]

        try:
            self.search(list(candidates_w), score_of)
        except _NeedMeasurement as need:
            return need.limit_w
        return None

    @abstractmethod
    def search(self, candidates_w: list[int], score_of: ScoreOf) -> None:
        """Call ``score_of`` on every limit this strategy wants measured, highest limit first."""


class Exhaustive(SearchStrategy):
    """Measure every candidate, highest first."""

    name = "exhaustive"

    def search(self, candidates_w: list[int], score_of: ScoreOf) -> None:
        for limit_w in candidates_w:
            score_of(limit_w)


class Descend(SearchStrategy):
    """Walk down from the maximum; stop once the score has risen ``patience`` times in a row.

    A limit counts as a rise when its score exceeds the best so far by more than ``tolerance``
    (relative); a new best resets the count, scores within the tolerance band leave it alone. On a
    unimodal cost curve this stops a couple of limits past the optimum.
    """

    name = "descend"

    def __init__(self, patience: int = 2, tolerance: float = 0.0) -> None:
        check_range("patience", patience, ge=1)
        check_range("tolerance", tolerance, ge=0.0, lt=1.0)
        self.patience = patience
        self.tolerance = tolerance

    def search(self, candidates_w: list[int], score_of: ScoreOf) -> None:
        best = math.inf
        rises = 0
        for limit_w in candidates_w:
            score = score_of(limit_w)
            if score < best:
                best, rises = score, 0
            elif score > best * (1.0 + self.tolerance):
                rises += 1
            if rises >= self.patience:
                return


class GoldenSection(SearchStrategy):
    """Discrete golden-section search over the candidates, after measuring the maximum.

    Needs about ``log1.618(n) + 2`` measurements for ``n`` candidates; exact only on a unimodal curve.
    """

    name = "golden"

    def search(self, candidates_w: list[int], score_of: ScoreOf) -> None:
        score_of(candidates_w[0])
        low, high = 0, len(candidates_w) - 1
        inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
        while high - low > 2:
            left = high - round((high - low) * inv_phi)
            right = low + round((high - low) * inv_phi)
            if left >= right:
                left, right = (low + high) // 2, (low + high) // 2 + 1
            if score_of(candidates_w[left]) <= score_of(candidates_w[right]):
                high = right
            else:
                low = left
        for index in range(low, high + 1):
            score_of(candidates_w[index])


class CoarseToFine(SearchStrategy):
    """Every ``stride``-th limit from the maximum (and the minimum), then both neighbours of the best.

    With ``stride=2`` it is exact on a unimodal curve and measures about 3/4 of the candidates; of
    the strategies that skip limits it strays least on the noisy shipped profiles.
    """

    name = "coarse"

    def __init__(self, stride: int = 2) -> None:
        check_range("stride", stride, ge=2)
        self.stride = stride

    def search(self, candidates_w: list[int], score_of: ScoreOf) -> None:
        last = len(candidates_w) - 1
        grid = sorted({*range(0, last + 1, self.stride), last})
        best = min(grid, key=lambda index: (score_of(candidates_w[index]), -index))
        for index in (best - 1, best + 1):
            if 0 <= index <= last:
                score_of(candidates_w[index])


STRATEGIES: dict[str, type[SearchStrategy]] = {
    Exhaustive.name: Exhaustive,
    Descend.name: Descend,
    GoldenSection.name: GoldenSection,
    CoarseToFine.name: CoarseToFine,
}
DEFAULT_SEARCH = Exhaustive.name


def get_search(search: str | SearchStrategy) -> SearchStrategy:
    """A strategy object from its name (``exhaustive``, ``descend``, ``golden``, ``coarse``) or as
    given."""
    if isinstance(search, SearchStrategy):
        return search
    if search not in STRATEGIES:
        raise ZeusConfigError(f"search must be one of {sorted(STRATEGIES)}, got {search!r}")
    return STRATEGIES[search]()
