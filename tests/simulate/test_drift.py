"""Data drift: corpus slicing, and the windowed bandit following a shifting optimum."""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from zeus.cli import app
from zeus.errors import ZeusConfigError
from zeus.policy import PruningGTSBatchSizeOptimizer
from zeus.simulate.drift import (
    DriftScenario,
    default_scenario,
    parse_tweet_date,
    run_drift_scenario,
    slice_corpus,
)


def write_corpus(path: Path, n: int) -> list[datetime]:
    """A Sentiment140-shaped CSV with ``n`` tweets one minute apart, written in shuffled order."""
    start = datetime(2009, 4, 6, 22, 19, 45)
    dates = [start + timedelta(minutes=i) for i in range(n)]
    rows = [
        [
            str(4 * (i % 2)),
            str(1000 + i),
            d.strftime("%a %b %d %H:%M:%S PDT %Y"),
            "NO_QUERY",
            f"user{i}",
            f'tweet number {i}, with "quotes"',
        ]
        for i, d in enumerate(dates)
    ]
    random.Random(0).shuffle(rows)
    with path.open("w", newline="", encoding="latin-1") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    return dates


def test_slices_are_date_sorted_windows_with_the_stride(tmp_path: Path) -> None:
    dates = write_corpus(tmp_path / "corpus.csv", 100)
    slices = slice_corpus(tmp_path / "corpus.csv", tmp_path / "out", slice_size=30, stride=20)

    assert [s.number for s in slices] == [1, 2, 3, 4]  # starts 0, 20, 40, 60; 80 would be short
    assert [s.path.name for s in slices] == [f"slice_000{i}.csv" for i in range(1, 5)]
    for k, info in enumerate(slices):
        with info.path.open(newline="", encoding="latin-1") as f:
            rows = list(csv.reader(f))
        assert len(rows) == 30
        got = [parse_tweet_date(r[2]) for r in rows]
        assert got == dates[20 * k : 20 * k + 30]
        assert rows[0][5].endswith('with "quotes"')
        assert (info.first_row, info.last_row) == (20 * k + 1, 20 * k + 30)


def test_bad_corpus_and_sizes_are_named(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus.csv", 10)
    with pytest.raises(ZeusConfigError, match="slice_size must be <= the corpus size"):
        slice_corpus(tmp_path / "corpus.csv", tmp_path / "out", slice_size=11, stride=1)
    with pytest.raises(ZeusConfigError, match="stride must be >= 1"):
        slice_corpus(tmp_path / "corpus.csv", tmp_path / "out", slice_size=5, stride=0)
    (tmp_path / "bad.csv").write_text('"0","1","not a date","q","u","t"\n')
    with pytest.raises(ZeusConfigError, match=r"bad.csv:1: column 'date'"):
        slice_corpus(tmp_path / "bad.csv", tmp_path / "out", slice_size=1, stride=1)
    (tmp_path / "short.csv").write_text('"0","1"\n')
    with pytest.raises(ZeusConfigError, match="expected 6 columns"):
        slice_corpus(tmp_path / "short.csv", tmp_path / "out", slice_size=1, stride=1)


def test_slice_corpus_cli(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus.csv", 50)
    result = CliRunner().invoke(
        app,
        [
            "master", "slice-corpus", str(tmp_path / "corpus.csv"),
            "--out", str(tmp_path / "out"), "--slice-size", "20", "--stride", "10",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 slices" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[-1] == "slice_0004.csv"


def test_windowed_bandit_follows_the_shifted_optimum() -> None:
    scenario = default_scenario()
    assert scenario.optimum(0) != scenario.optimum(scenario.shift_at)
    windowed, unwindowed = [], []
    for seed in range(5):
        for size, shares in ((5, windowed), (0, unwindowed)):
            policy = PruningGTSBatchSizeOptimizer(seed=seed, window_size=size)
            trace = run_drift_scenario(policy, scenario, seed)
            shares.append(trace.share_of_optimum(scenario, scenario.shift_at))
    # Before the shift both learn the same thing; after it only the windowed one moves on.
    assert np.mean(windowed) > np.mean(unwindowed) + 0.3
    assert sum(w > u for w, u in zip(windowed, unwindowed, strict=True)) >= 4


def test_scenario_validation() -> None:
    with pytest.raises(ZeusConfigError, match="same batch sizes"):
        DriftScenario({1: 1.0}, {2: 1.0}, shift_at=1, num_recurrence=3, default_bs=1)
    with pytest.raises(ZeusConfigError, match="shift_at"):
        DriftScenario({1: 1.0}, {1: 1.0}, shift_at=5, num_recurrence=3, default_bs=1)
