"""`zeus master run/resume` with a YAML job file: validation and a real series."""

from __future__ import annotations

import json
import os
import subprocess
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
            "policy: must be one of local-search-ts, pruning-gts, default, grid-search",
        ),
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
        ({"policy": "json:JSONDecoder"}, "policy .*not a zeus.policy.BatchSizeOptimizer"),
        ({"policy": "zeus.policy.base:BatchSizeOptimizer"}, "policy .*does not implement"),
        ({"policy": "no_such_module:X"}, "policy .*cannot be imported"),
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
    with pytest.raises(ZeusConfigError, match=r"policy_args: arguments for policy .*colour"):
        parse_job_file(job_data(policy="local-search-ts", policy_args={"colour": 1})).make_policy()


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
    assert "policy_name: 'PruningGTSBatchSizeOptimizer' saved" in str(result.exception)
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


def test_another_job_in_the_run_directory_is_refused_and_the_folder_untouched(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    first = CliRunner().invoke(
        app,
        ["master", "run", "--job", str(write_job(tmp_path, num_recurrence=1)), "--out", str(out)],
    )
    assert first.exit_code == 0, first.output
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    other = tmp_path / "other"
    other.mkdir()
    second = CliRunner().invoke(
        app,
        ["master", "run", "--job", str(write_job(other, target_metric=0.95)), "--out", str(out)],
    )
    assert isinstance(second.exception, ZeusConfigError)
    message = str(second.exception)
    assert "job.target_metric: 0.9 saved, 0.95 now" in message
    assert f"zeus master resume {out}" in message and "--out DIR" in message
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    resumed = CliRunner().invoke(app, ["master", "resume", str(out), "--recurrences", "2"])
    assert resumed.exit_code == 0, resumed.output


def test_recurrences_option_supplies_a_missing_num_recurrence(tmp_path: Path) -> None:
    data = job_data()
    del data["num_recurrence"]
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    refused = CliRunner().invoke(app, ["master", "run", "--job", str(path), "--out", str(out)])
    assert "num_recurrence is missing; add it to the file or pass --recurrences N" in str(
        refused.exception
    )
    assert not out.exists()
    result = CliRunner().invoke(
        app, ["master", "run", "--job", str(path), "--out", str(out), "--recurrences", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "2 recurrences, 2 runs" in result.output
    assert yaml.safe_load((out / "job.yaml").read_text())["num_recurrence"] == 2  # resume's target


def test_a_command_that_does_not_exist_is_refused_before_any_run(tmp_path: Path) -> None:
    path = write_job(tmp_path, command="no-such-trainer-xyz --bs {bs}")
    result = CliRunner().invoke(
        app, ["master", "run", "--job", str(path), "--out", str(tmp_path / "r")]
    )
    assert (
        str(result.exception)
        == "command: 'no-such-trainer-xyz' is not found on PATH; is it installed?"
    )
    assert not (tmp_path / "r").exists()


def test_a_crash_shows_the_last_lines_of_its_log(tmp_path: Path) -> None:
    path = write_job(tmp_path, num_recurrence=1, max_tries=2)
    path.write_text(path.read_text().replace("--bs {bs}", "--bs {bs} --crash-bs 32"))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["master", "run", "--job", str(path), "--out", str(tmp_path / "r")]
    )
    assert "crashed (exited with code 1); last lines of" in result.output
    assert "│ RuntimeError: simulated out-of-memory at batch size 32" in result.output


def test_rows_stream_as_runs_end_when_output_is_not_a_terminal(tmp_path: Path) -> None:
    """The second run waits until the test has seen the first run's row: only streaming passes."""
    flag = tmp_path / "first-row-seen"
    path = write_job(tmp_path, num_recurrence=2)
    zeus = str(Path(sys.executable).parent / "zeus")
    env = {**os.environ, "TEST_WAIT_FOR": str(flag)}
    with subprocess.Popen(
        [zeus, "master", "run", "--job", str(path), "--out", str(tmp_path / "r")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.split()[:3] == ["1", "1", "32"]:
                flag.touch()
        assert proc.wait(120) == 0, "\n".join(lines)
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rec", "try"])
    assert lines[header + 1].split()[:3] == ["1", "1", "32"] and lines[header + 1].endswith(
        "reached"
    )
    assert lines[header + 2].startswith("  (power limit –: none was chosen")
    assert lines[header + 3].split()[:3] == ["2", "1", "16"]
