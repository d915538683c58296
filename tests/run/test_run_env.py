"""The ZEUS_* run variables: what a driver writes, a run reads back, through one definition."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from zeus.errors import ZeusConfigError
from zeus.run.dataloader_config import TRAIN_ONLY_ARGS, resolve_config
from zeus.run.env import RUN_VARIABLES, ZeusRunEnv, parse_profile_params
from zeus.run.jobfile import parse_job_file


def test_every_variable_round_trips_from_driver_to_run(tmp_path: Path) -> None:
    written = ZeusRunEnv(
        target_metric=0.975,
        log_dir=tmp_path / "logs",
        job_id="digits-r003-t01-0002",
        cost_thresh=1215.25,
        eta_knob=0.3,
        profile_params=(3, 7),
        use_optimal_pl=False,
    )
    env = written.as_env()
    assert set(env) == {v.name for v in RUN_VARIABLES}
    config = resolve_config(5, {}, env)
    assert (config.target_metric, config.log_dir, config.job_id) == (
        0.975,
        tmp_path / "logs",
        "digits-r003-t01-0002",
    )
    assert (config.cost_thresh, config.eta_knob, config.use_optimal_pl) == (1215.25, 0.3, False)
    assert (config.warmup_steps, config.profile_steps) == (3, 7)
    assert set(TRAIN_ONLY_ARGS) == {v.key for v in RUN_VARIABLES}  # one list of run parameters


def test_no_bound_and_no_profile_params_mean_the_runs_defaults(tmp_path: Path) -> None:
    env = ZeusRunEnv(0.5, tmp_path, "j", None, 0.5, None, True).as_env()
    assert env["ZEUS_COST_THRESH"] == "inf" and "ZEUS_PROFILE_PARAMS" not in env
    config = resolve_config(5, {}, env)
    assert math.isinf(config.cost_thresh) and (config.warmup_steps, config.profile_steps) == (
        10,
        40,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", "must be 'warmup,measure' \\(two integers, e.g. '10,40'\\), got '10'"),
        ("a,b", "must be 'warmup,measure'"),
        ("-1,5", "warmup steps must be >= 0, got -1"),
        ("2,0", "measure steps must be >= 1, got 0"),
    ],
)
def test_one_parser_of_warmup_measure_for_every_source(text: str, message: str) -> None:
    with pytest.raises(ZeusConfigError, match=f"^profile_params {message}"):
        parse_profile_params(text)
    with pytest.raises(ZeusConfigError, match=f"ZEUS_PROFILE_PARAMS {message}"):
        resolve_config(5, {}, {"ZEUS_PROFILE_PARAMS": text})
    job = {"command": "python t.py {bs}", "optimizer": "adam", "target_metric": 0.9,
           "max_epochs": 3, "default_batch_size": 8, "batch_sizes": [8], "profile_params": text}  # fmt: skip
    with pytest.raises(ZeusConfigError, match=f"profile_params {message}"):
        parse_job_file(job)
    assert parse_profile_params("2,5") == (2, 5)
