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
        ({"policy": "bandit"}, "policy: must be one of pruning_gts, default, grid_search"),
        ({"eta_knob": 2}, r"eta_knob must be >= 0 and <= 1, got 2"),
        ({"max_epochs": 0}, "max_epochs: must be > 0, got 0"),
        ({"max_epochs": "ten"}, "max_epochs: must be a whole number, got 'ten'"),
        ({"target_metric": None}, r"target_metric: must be a number, got nothing \(empty value\)"),
        ({"batch_sizes": []}, "batch_sizes: must not be empty"),
        (
            {"default_batch_size": 48},
            r"default_batch_size: 48 is not one of batch_sizes \[16, 32, 64\]",
        ),
        ({"colour": "red"}, "colour: unknown field"),
        ({"max_epoch": 3}, "max_epoch: unknown field; did you mean max_epochs"),
        ({"profile_params": "10"}, "profile_params must be 'warmup,measure'"),
    ],
)
def test_bad_field_is_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ZeusConfigError, match="^job file: " + message):
        parse_job_file(job_data(**overrides))


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write_job(tmp_path, max_epochs=0, workdir="missing", command="python x.py {depth}")
    with pytest.raises(ZeusConfigError) as e:
        load_job_file(path)
    assert str(e.value).splitlines() == [
        f"{path} has 3 problems:",
        "  - command placeholder {depth} in '{depth}' is unknown; allowed: {bs}, {lr}, {seed}, "
        "{epochs}, {slice_number}, {target_metric} (write {{ and }} for literal braces)",
        "  - max_epochs: must be > 0, got 0",
        f"  - workdir: {tmp_path / 'missing'} is not a folder",
    ]
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ZeusConfigError, match=r"empty\.yaml: the file is empty"):
        load_job_file(tmp_path / "empty.yaml")


def test_missing_field_is_named(tmp_path: Path) -> None:
    data = job_data()
    del data["target_metric"]
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(
        ZeusConfigError, match=r"job.yaml: target_metric: missing \(the validation metric"
    ):
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
