"""`zeus simulate` end to end through the CLI app."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zeus.cli import app
from zeus.errors import ZeusConfigError
from zeus.policy import DefaultBatchSizeOptimizer
from zeus.simulate.groups import generate_groups, write_group_trace

runner = CliRunner()


class SeededDefault(DefaultBatchSizeOptimizer):
    """A user's policy (module:Class): always b0, remembers the seed it was given."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed


class NotAPolicy:
    pass


def test_single_writes_json_and_plots(tmp_path: Path) -> None:
    out, plot = tmp_path / "runs.json", tmp_path / "img" / "sim"
    result = runner.invoke(
        app,
        ["simulate", "single", "--dataset", "imagenet", "--gpu", "p100", "--seed", "2",
         "--out", str(out), "--plot", str(plot)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Oracle" in result.output and "energy saved, last 10" in result.output
    data = json.loads(out.read_text())
    assert data["gpu"] == "p100" and data["metrics"]["num_recurrence"] == 24
    assert {r["batch_size"] for r in data["records"]} <= {64, 128}
    for suffix in ("history", "configs"):
        png = tmp_path / "img" / f"sim-{suffix}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--dataset", "mnist"], "unknown dataset 'mnist'; valid: cifar100"),
        (["--gpu", "h100"], "unknown GPU 'h100'; valid: a40"),
        (["--eta-knob", "1.2"], "eta_knob must be >= 0 and <= 1"),
        (["--beta-knob", "0"], "beta_knob must be > 0"),
        (["--num-recurrence", "0"], "num_recurrence must be >= 1"),
        (["--b0", "100"], "b0 .* 100 .* valid: 8, 16, 32"),
        (["--policy", "random"], "unknown policy 'random'; valid: local-search-ts, pruning-gts"),
        (["--out", "x.txt"], "--out must end in .csv or .json"),
    ],
)
def test_single_bad_input_is_a_clear_error(args: list[str], match: str) -> None:
    result = runner.invoke(app, ["simulate", "single", *args])
    assert isinstance(result.exception, ZeusConfigError)
    assert re.search(match, str(result.exception)), str(result.exception)


def test_sweep_writes_per_seed_rows(tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    result = runner.invoke(
        app,
        ["simulate", "sweep", "--datasets", "sentiment140", "--gpus", "p100,v100", "--seeds", "2",
         "--processes", "1", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["workload"], r["gpu"], r["seed"]) for r in rows] == [
        ("sentiment140", g, s) for g in ("p100", "v100") for s in ("1", "2")
    ]
    assert "sentiment140" in result.output
    bad = runner.invoke(app, ["simulate", "sweep", "--gpus", "v100,tpu"])
    assert isinstance(bad.exception, ZeusConfigError) and "tpu" in str(bad.exception)


def test_sweep_takes_a_seed_range_and_a_module_class_policy(tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    result = runner.invoke(
        app,
        ["simulate", "sweep", "--datasets", "sentiment140", "--gpus", "p100", "--seeds", "41-43",
         "--processes", "1", "--policy", f"{__name__}:SeededDefault", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{__name__}:SeededDefault, mean over seeds 41-43" in result.output.replace("\n", "")
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["seed"] for r in rows] == ["41", "42", "43"]
    # Always b0 with JIT power limits: below Default (b0 at the maximum limit) in this cell.
    assert all(r["policy"] == f"{__name__}:SeededDefault" for r in rows)
    assert all(float(r["cum_regret_norm"]) < float(r["default_cum_regret_norm"]) for r in rows)
    paper = runner.invoke(
        app,
        [
            "simulate",
            "single",
            "--dataset",
            "sentiment140",
            "--gpu",
            "p100",
            "--policy",
            "pruning_gts",
        ],
    )
    assert paper.exit_code == 0 and "policy pruning_gts" in paper.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--seeds", "5-2"], "--seeds must be a count >= 1 or a range"),
        (["--seeds", "ten"], "--seeds must be a count .* or a range"),
        (
            ["--policy", f"{__name__}:NotAPolicy"],
            "is not a zeus.policy.BatchSizeOptimizer subclass",
        ),
        (["--policy", "mypolicies:Mine"], "policy 'mypolicies:Mine' cannot be imported"),
        (
            ["--policy", "thompson"],
            "unknown policy 'thompson'; valid: local-search-ts, pruning-gts",
        ),
    ],
)
def test_sweep_bad_seeds_and_policies_are_clear_errors(args: list[str], match: str) -> None:
    result = runner.invoke(app, ["simulate", "sweep", "--datasets", "squad", *args])
    assert isinstance(result.exception, ZeusConfigError)
    assert re.search(match, str(result.exception)), str(result.exception)


def test_cluster_from_a_group_trace_file(tmp_path: Path) -> None:
    trace = tmp_path / "groups.csv.gz"
    write_group_trace(generate_groups(["squad"], 2, seed=3, mean_jobs=8), trace)
    out = tmp_path / "runs.csv"
    result = runner.invoke(
        app,
        ["simulate", "cluster", "--group-trace", str(trace), "--gpu", "v100", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "squad-000" in result.output and "squad-001" in result.output
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert {r["group"] for r in rows} == {"squad-000", "squad-001"}
