"""`zeus master run/resume` with a YAML job file: validation and a real series."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from zeus.cli import app
from zeus.errors import ZeusConfigError
from zeus.run.history import load_series
from zeus.run.jobfile import load_job_file, parse_job_file

SCRIPT = Path(__file__).with_name("master_job_script.py")


def job_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "command": f"{sys.executable} {SCRIPT} --bs {{bs}} --lr {{lr}} --epochs {{epochs}}",
        "optimizer": "sgd",
        "target_metric": 0.9,
        "max_epochs": 5,
        "default_batch_size": 32,
        "learning_rate": 0.4,
        "batch_sizes": [16, 32, 64],
        "num_recurrence": 3,
        "dataset": "synthetic",
        "network": "logreg",
        "policy": "grid_search",
    }
    data.update(overrides)
    return data


def write_job(tmp_path: Path, **overrides: Any) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_data(**overrides)))
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"policy": "bandit"},
            "field 'policy'.*local-search-ts, pruning-gts, default, grid-search",
        ),
        ({"eta_knob": 2}, "field 'eta_knob'.*less than or equal to 1"),
        ({"max_epochs": 0}, "field 'max_epochs'.*greater than 0"),
        ({"batch_sizes": []}, "field 'batch_sizes'"),
        ({"colour": "red"}, "field 'colour'.*Extra inputs"),
        ({"profile_params": "10"}, "profile_params must be 'warmup,measure'"),
        ({"policy": "json:JSONDecoder"}, "field 'policy'.*not a zeus.policy.BatchSizeOptimizer"),
        ({"policy": "zeus.policy.base:BatchSizeOptimizer"}, "field 'policy'.*does not implement"),
        ({"policy": "no_such_module:X"}, "field 'policy'.*cannot be imported"),
    ],
)
def test_bad_field_is_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ZeusConfigError, match=message):
        parse_job_file(job_data(**overrides))


def test_policy_names_aliases_and_seed() -> None:
    from zeus.policy import LocalSearchTSBatchSizeOptimizer, PruningGTSBatchSizeOptimizer

    data = job_data(seed=4)
    del data["policy"]
    default = parse_job_file(data).make_policy()  # the default policy, seeded from the job file
    assert isinstance(default, LocalSearchTSBatchSizeOptimizer) and default.seed == 4
    for spelling in ("pruning_gts", "pruning-gts", "zeus.policy:PruningGTSBatchSizeOptimizer"):
        spec = parse_job_file(job_data(policy=spelling, policy_args={"window_size": 3}))
        paper = spec.make_policy()
        assert isinstance(paper, PruningGTSBatchSizeOptimizer)
        assert (paper.seed, paper.params["window_size"]) == (0, 3)
    with pytest.raises(ZeusConfigError, match=r"field 'policy': arguments for policy .*colour"):
        parse_job_file(job_data(policy="local-search-ts", policy_args={"colour": 1})).make_policy()


def test_missing_field_is_named(tmp_path: Path) -> None:
    data = job_data()
    del data["target_metric"]
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ZeusConfigError, match="field 'target_metric': Field required"):
        load_job_file(tmp_path / "job.yaml")
    data = job_data()
    data["b0"] = data.pop("default_batch_size") * 2  # b0 is an accepted alias
    assert parse_job_file(data).default_batch_size == 64


def test_cli_run_then_resume_for_more(tmp_path: Path) -> None:
    path = write_job(tmp_path, num_recurrence=2, seed=3)
    out = tmp_path / "run"
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(app, ["master", "run", "--job", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 recurrences, 2 runs" in result.output
    assert "reached" in result.output
    saved = load_series(out)
    assert saved is not None and [r.batch_size for r in saved.runs] == [32, 16]  # grid: b0 first
    assert yaml.safe_load((out / "job.yaml").read_text())["workdir"] == str(tmp_path)

    result = runner.invoke(app, ["master", "resume", str(out), "--recurrences", "4"])
    assert result.exit_code == 0, result.output
    saved = load_series(out)
    assert saved is not None and [r.batch_size for r in saved.runs[:3]] == [32, 16, 64]
    cheapest = min(saved.runs[:3], key=lambda r: r.cost or 0.0)
    assert saved.runs[3].batch_size == cheapest.batch_size  # grid search: then the best observed
    assert [r.seed for r in saved.runs] == [3, 4, 5, 6]
    result_file = out / "logs" / f"{saved.runs[3].job_id}.result.json"
    assert json.loads(result_file.read_text())["batch_size"] == cheapest.batch_size


def test_a_refused_run_leaves_the_series_resumable(tmp_path: Path) -> None:
    """A series started with the paper's policy, run again from a job file that names none (the
    default policy changed): refused, and the run directory still resumes as it was."""
    out = tmp_path / "run"
    runner = CliRunner(env={"COLUMNS": "200"})
    path = write_job(tmp_path, num_recurrence=1, policy="pruning_gts")
    assert (
        runner.invoke(app, ["master", "run", "--job", str(path), "--out", str(out)]).exit_code == 0
    )
    before = (out / "job.yaml").read_text()
    data = job_data(num_recurrence=1)
    del data["policy"]
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["master", "run", "--job", str(path), "--out", str(out)])
    assert isinstance(result.exception, ZeusConfigError)
    assert "different policy_name ('PruningGTSBatchSizeOptimizer')" in str(result.exception)
    assert (out / "job.yaml").read_text() == before
    result = runner.invoke(app, ["master", "resume", str(out), "--recurrences", "2"])
    assert result.exit_code == 0, result.output
    saved = load_series(out)
    assert saved is not None and saved.completed_recurrences == 2
    assert saved.policy_name == "PruningGTSBatchSizeOptimizer"


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    path = write_job(tmp_path, command="python x.py --bs {bs} --depth {depth}")
    result = CliRunner().invoke(
        app, ["master", "run", "--job", str(path), "--out", str(tmp_path / "r")]
    )
    assert isinstance(result.exception, ZeusConfigError)
    assert "{depth}" in str(result.exception)
    assert not (tmp_path / "r" / "logs").exists()
    result = CliRunner().invoke(app, ["master", "resume", str(tmp_path / "nothing")])
    assert "not a zeus master run directory" in str(result.exception)
