"""`BatchSizeOptimizer` against a real `zeus serve` process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.client.conftest import LiveServer, start_server, stop_server
from tests.client.helpers import PROFILE, replay_monitor, spec, unique_job_id
from zeus.device.replay import load_profile
from zeus.errors import ZeusConfigError, ZeusServerError
from zeus.optimizer.batch_size import BatchSizeOptimizer, ZeusBSOEarlyStop

EPOCH_STEPS = 4


def _epoch(bso: BatchSizeOptimizer) -> None:
    """An epoch of training steps on the replay GPU (virtual time: they take no wall time)."""
    for _ in range(EPOCH_STEPS):
        bso.monitor.step(bso.current_batch_size)


def _run_trial(bso: BatchSizeOptimizer, metrics: list[float]) -> None:
    bso.get_batch_size()
    bso.on_train_begin()
    for metric in metrics:
        _epoch(bso)
        bso.on_evaluate(metric)
        if bso.training_finished:
            break
    bso.on_train_end()


def _trials(server: LiveServer, job_id: str) -> list[dict[str, object]]:
    response = server.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["trials"])


def test_a_converging_trial_reports_cumulative_measurements(bso_server: LiveServer) -> None:
    job = spec()
    bso = BatchSizeOptimizer(replay_monitor(), bso_server.url, job)
    assert bso.trial_number is None and bso.current_batch_size is None
    assert bso.get_batch_size() == job.default_batch_size  # pruning starts at the default
    assert bso.get_batch_size() == job.default_batch_size  # no second trial
    assert bso.trial_number == 1 and bso.job_id == job.job_id
    _run_trial(bso, [0.5, 0.7, 0.95, 0.99])
    assert bso.training_finished and bso.converged
    (trial,) = _trials(bso_server, str(job.job_id))
    state = bso.state_dict()
    assert trial["status"] == "succeeded" and trial["current_epoch"] == 3
    # time and energy are cumulative over the three epochs: the replay A40's figures at 300 W
    at_max = load_profile(PROFILE).at(None, 300)
    assert trial["time"] == pytest.approx(state["time_s"])
    assert state["time_s"] == pytest.approx(3 * EPOCH_STEPS * at_max.step_time_s)
    assert trial["energy"] == pytest.approx(state["energy_j"])
    assert state["energy_j"] == pytest.approx(state["time_s"] * at_max.power_w)
    bso.close()


def test_launches_with_one_job_id_are_one_recurring_job(
    bso_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEUS_JOB_ID", unique_job_id())
    batch_sizes = []
    for _ in range(3):  # three launches; every one registers the same spec again
        bso = BatchSizeOptimizer(replay_monitor(), bso_server.url, spec(job_id=None))
        _run_trial(bso, [0.95])
        batch_sizes.append(bso.current_batch_size)
        bso.close()
    # pruning: the default, then each smaller batch size in descending order
    assert batch_sizes == [32, 16, 8]
    assert [t["trial_number"] for t in _trials(bso_server, str(spec(job_id=None).job_id))] == [
        1,
        2,
        3,
    ]


def test_early_stop_without_convergence_raises(bso_server: LiveServer) -> None:
    job = spec(max_epochs=2)
    bso = BatchSizeOptimizer(replay_monitor(), bso_server.url, job)
    bso.get_batch_size()
    bso.on_train_begin()
    _epoch(bso)
    bso.on_evaluate(0.1)
    assert not bso.training_finished
    _epoch(bso)
    with pytest.raises(ZeusBSOEarlyStop, match=r"trial 1 of job .* was stopped") as caught:
        bso.on_evaluate(0.2)
    assert caught.value.trial_number == 1 and caught.value.batch_size == 32
    assert bso.training_finished and not bso.converged
    (trial,) = _trials(bso_server, str(job.job_id))
    assert trial["status"] != "running" and trial["converged"] is False
    bso.close()


def test_server_refusals_carry_the_server_message(bso_server: LiveServer) -> None:
    job_id = unique_job_id()
    first = BatchSizeOptimizer(replay_monitor(), bso_server.url, spec(job_id=job_id))
    first.register_job()
    conflicting = BatchSizeOptimizer(
        replay_monitor(), bso_server.url, spec(job_id=job_id, batch_sizes=(32, 64))
    )
    with pytest.raises(ZeusServerError, match="409") as caught:
        conflicting.get_batch_size()
    assert job_id in str(caught.value) or "spec" in str(caught.value).lower()
    first.close()
    conflicting.close()


def test_bad_reports_are_refused_before_sending(bso_server: LiveServer) -> None:
    job = spec()
    bso = BatchSizeOptimizer(replay_monitor(), bso_server.url, job)
    bso.get_batch_size()
    bso.on_train_begin()
    with pytest.raises(ZeusConfigError, match="metric must be a finite number"):
        bso.on_evaluate(float("nan"))
    _epoch(bso)
    bso.on_evaluate(0.95)  # the trial goes on as if the bad call never happened
    (trial,) = _trials(bso_server, str(job.job_id))
    assert trial["current_epoch"] == 1 and trial["status"] == "succeeded"
    bso.close()


def test_a_failed_report_keeps_measuring(bso_server: LiveServer) -> None:
    job = spec()
    bso = BatchSizeOptimizer(replay_monitor(), bso_server.url, job, max_retries=0)
    bso.get_batch_size()
    bso.on_train_begin()
    _epoch(bso)
    real_trial, bso._trial_number = bso._trial_number, 999  # the server refuses this report
    with pytest.raises(ZeusServerError):
        bso.on_evaluate(0.5)
    bso._trial_number = real_trial
    _epoch(bso)
    bso.on_evaluate(0.95)  # carries both epochs and their whole time
    (trial,) = _trials(bso_server, str(job.job_id))
    assert trial["current_epoch"] == 2 and trial["time"] == pytest.approx(
        bso.state_dict()["time_s"]
    )
    assert trial["time"] == pytest.approx(
        2 * EPOCH_STEPS * load_profile(PROFILE).at(None, 300).step_time_s
    )
    bso.close()


def test_training_needs_a_trial_first(bso_server: LiveServer) -> None:
    bso = BatchSizeOptimizer(replay_monitor(), bso_server.url, spec())
    with pytest.raises(ZeusConfigError, match="get_batch_size"):
        bso.on_train_begin()
    other_rank = BatchSizeOptimizer(replay_monitor(), bso_server.url, spec(), rank=1)
    with pytest.raises(ZeusConfigError, match="rank must be 0"):
        other_rank.get_batch_size()
    bso.close()
    other_rank.close()


def test_end_trial_as_failed_frees_the_trial(bso_server: LiveServer) -> None:
    job = spec()
    bso = BatchSizeOptimizer(replay_monitor(), bso_server.url, job)
    bso.get_batch_size()
    bso.end_trial_as_failed()
    bso.end_trial_as_failed()  # idempotent
    (trial,) = _trials(bso_server, str(job.job_id))
    assert trial["status"] == "failed"
    bso.close()


def test_closing_mid_trial_keeps_the_failure_handler(bso_server: LiveServer) -> None:
    job = spec()
    bso = BatchSizeOptimizer(replay_monitor(), bso_server.url, job)
    bso.get_batch_size()
    bso.close()  # e.g. a `finally:` before the exception reaches the top
    bso.end_trial_as_failed()  # what the handlers do if the process then dies: reconnects
    (trial,) = _trials(bso_server, str(job.job_id))
    assert trial["status"] == "failed"
    bso.close()


def test_the_bearer_token_is_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_server(tmp_path, "--token", "s3cret")
    try:
        no_token = BatchSizeOptimizer(replay_monitor(), server.url, spec())
        with pytest.raises(ZeusServerError, match="401"):
            no_token.get_batch_size()
        with_arg = BatchSizeOptimizer(replay_monitor(), server.url, spec(), token="s3cret")
        assert with_arg.get_batch_size() == 32
        monkeypatch.setenv("ZEUS_BSO_TOKEN", "s3cret")
        from_env = BatchSizeOptimizer(replay_monitor(), server.url, spec())
        assert from_env.get_batch_size() == 32
        for bso in (no_token, with_arg, from_env):
            bso.end_trial_as_failed()
            bso.close()
    finally:
        stop_server(server)
