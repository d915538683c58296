"""Data drift: slicing a time-ordered corpus into recurrences, and a drift scenario for the bandit.

The paper's drifting sentiment job trains each recurrence on the next window of a tweet corpus
(Sentiment140: a headerless CSV with columns polarity, id, date, query, user, text). `slice_corpus`
sorts the corpus by date and cuts fixed-size windows with a fixed stride; recurrence ``i`` reads
``slice_{i:04d}.csv`` (the ``{slice_number}`` placeholder of `ZeusMaster`).

`run_drift_scenario` drives a batch-size policy through a synthetic cost model whose cheapest batch
size changes mid-series. A windowed Gaussian bandit (``PruningGTSBatchSizeOptimizer(window_size=k)``)
forgets the old costs and follows the new optimum; the unwindowed one keeps trusting the old history.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from zeus.errors import ZeusConfigError, check_range
from zeus.job import Job
from zeus.policy.base import BatchSizeOptimizer

logger = logging.getLogger(__name__)

SENTIMENT140_COLUMNS = ("polarity", "id", "date", "query", "user", "text")


@dataclass(frozen=True)
class SliceInfo:
    """One written slice: its file, its rows in date order (1-based, inclusive), its date range."""

    number: int
    path: Path
    first_row: int
    last_row: int
    first_date: str
    last_date: str


def parse_tweet_date(text: str) -> datetime:
    """Sentiment140's ``Mon Apr 06 22:19:45 PDT 2009`` (the zone word is ignored: it is constant)."""
    parts = text.split()
    if len(parts) != 6:
        raise ValueError(f"not a Sentiment140 date: {text!r}")
    return datetime.strptime(" ".join(parts[:4] + parts[5:]), "%a %b %d %H:%M:%S %Y")


def read_corpus(path: Path, encoding: str = "latin-1") -> list[list[str]]:
    """The corpus rows sorted by date (stable: rows with equal dates keep their file order)."""
    rows: list[tuple[datetime, list[str]]] = []
    try:
        with path.open(newline="", encoding=encoding) as f:
            for line_number, row in enumerate(csv.reader(f), start=1):
                if len(row) != len(SENTIMENT140_COLUMNS):
                    raise ZeusConfigError(
                        f"{path}:{line_number}: expected {len(SENTIMENT140_COLUMNS)} columns "
                        f"({', '.join(SENTIMENT140_COLUMNS)}), got {len(row)}"
                    )
                try:
                    rows.append((parse_tweet_date(row[2]), row))
                except ValueError as e:
                    raise ZeusConfigError(f"{path}:{line_number}: column 'date': {e}") from None
    except OSError as e:
        raise ZeusConfigError(f"cannot read corpus {path}: {e.strerror}") from None
    rows.sort(key=lambda item: item[0])
    return [row for _, row in rows]


def slice_corpus(
    path: str | Path,
    out_dir: str | Path,
    *,
    slice_size: int,
    stride: int,
    encoding: str = "latin-1",
) -> list[SliceInfo]:
    """Write ``slice_0001.csv``, … (each ``slice_size`` date-sorted rows, starts ``stride`` apart).

    Only full slices are written; a corpus shorter than one slice is an error.
    """
    check_range("slice_size", slice_size, ge=1)
    check_range("stride", stride, ge=1)
    rows = read_corpus(Path(path), encoding)
    if len(rows) < slice_size:
        raise ZeusConfigError(
            f"slice_size must be <= the corpus size ({len(rows)} rows), got {slice_size}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    slices = []
    for number, start in enumerate(range(0, len(rows) - slice_size + 1, stride), start=1):
        chunk = rows[start : start + slice_size]
        target = out / f"slice_{number:04d}.csv"
        with target.open("w", newline="", encoding=encoding) as f:
            csv.writer(f, quoting=csv.QUOTE_ALL).writerows(chunk)
        slices.append(
            SliceInfo(number, target, start + 1, start + slice_size, chunk[0][2], chunk[-1][2])
        )
    logger.info(
        "Wrote %d slices of %d rows (stride %d) to %s", len(slices), slice_size, stride, out
    )
    return slices


@dataclass(frozen=True)
class DriftScenario:
    """A synthetic job whose cost per batch size changes at recurrence ``shift_at``.

    Each run's cost is the batch size's mean cost for the current phase times ``1 + noise·N(0,1)``;
    every run reaches the target (drift changes what is cheap, not what is feasible).
    """

    costs_before: Mapping[int, float]
    costs_after: Mapping[int, float]
    shift_at: int
    num_recurrence: int
    default_bs: int
    noise: float = 0.05

    def __post_init__(self) -> None:
        if set(self.costs_before) != set(self.costs_after):
            raise ZeusConfigError("costs_before and costs_after must have the same batch sizes")
        if self.default_bs not in self.costs_before:
            raise ZeusConfigError(f"default_bs {self.default_bs} must be one of the batch sizes")
        check_range("shift_at", self.shift_at, ge=1, lt=self.num_recurrence)
        check_range("noise", self.noise, ge=0)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted(self.costs_before)

    def optimum(self, recurrence: int) -> int:
        """The cheapest batch size in effect at ``recurrence`` (0-based)."""
        costs = self.costs_before if recurrence < self.shift_at else self.costs_after
        return min(costs, key=lambda b: costs[b])

    def job(self) -> Job:
        return Job(
            dataset="sentiment140-drift",
            network="bert_base_uncased",
            optimizer="adamw",
            target_metric=0.84,
            max_epochs=10,
            default_bs=self.default_bs,
        )


def default_scenario() -> DriftScenario:
    """Before the shift 32 is cheapest; after it 128 is, and the old favourites got dearer.

    The old optimum's new cost (1.6) is only a little above what the others cost before the shift, so
    a bandit that averages over all history keeps choosing from the old picture.
    """
    return DriftScenario(
        costs_before={16: 1.5, 32: 1.0, 64: 1.2, 128: 1.4},
        costs_after={16: 1.9, 32: 1.6, 64: 1.7, 128: 0.7},
        shift_at=40,
        num_recurrence=80,
        default_bs=64,
    )


@dataclass
class DriftTrace:
    """What a policy chose and paid in each recurrence of a scenario."""

    batch_sizes: list[int] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)

    def share_of_optimum(
        self, scenario: DriftScenario, start: int, end: int | None = None
    ) -> float:
        """Fraction of recurrences in ``[start, end)`` that ran the optimum of their phase."""
        chosen = self.batch_sizes[start:end]
        hits = sum(b == scenario.optimum(start + i) for i, b in enumerate(chosen))
        return hits / len(chosen) if chosen else 0.0


def run_drift_scenario(
    policy: BatchSizeOptimizer, scenario: DriftScenario, seed: int = 0
) -> DriftTrace:
    """Drive ``policy`` through ``scenario`` (one run per recurrence; costs from the model)."""
    rng = np.random.default_rng(seed)
    job = scenario.job()
    policy.register_job(job, scenario.batch_sizes)
    trace = DriftTrace()
    for recurrence in range(scenario.num_recurrence):
        costs = scenario.costs_before if recurrence < scenario.shift_at else scenario.costs_after
        bs = policy.predict(job)
        cost = max(costs[bs] * (1.0 + scenario.noise * float(rng.standard_normal())), 1e-9)
        policy.observe(job, bs, cost, True)
        trace.batch_sizes.append(bs)
        trace.costs.append(cost)
    return trace
