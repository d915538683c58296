"""Reports no working job sends are refused, and a job a bad report poisoned can be reset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.server.conftest import LiveServer, job_spec
from tests.server.test_api import predict, register, report
from zeus.cli import app as cli


def _refused(client: TestClient, trial: dict[str, object], **fields: float) -> dict[str, object]:
    body = {**trial, "time": 10.0, "energy": 1000.0, "metric": 0.9, "current_epoch": 1, **fields}
    response = client.post("/report", json=body)
    assert response.status_code == 422, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_zero_or_impossible_time_or_energy_is_422_naming_the_field(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    for fields, field in [
        ({"time": 0.0, "energy": 0.0}, "time"),  # the report that bricked a job
        ({"time": 0.0}, "time"),
        ({"energy": 0.0}, "energy"),
        ({"time": 1.0, "energy": 1e6}, "energy"),  # 1 MW from a 300 W job: not joules
    ]:
        answer = _refused(client, trial, **fields)
        assert str(answer["message"]).startswith(field), answer
        assert answer["detail"] == [
            {"type": "value_error", "loc": ["body", field], "msg": answer["message"]}
        ]
    # Nothing was recorded: the trial still runs, the job has learned nothing.
    detail = client.get(f"/jobs/{job_id}").json()
    assert detail["min_cost"] is None and detail["trials"][0]["status"] == "running"
    # The job goes on as if the bad reports never came.
    assert report(client, trial, metric=0.9)["converged"] is True
    second = predict(client, job_id)
    assert report(client, second, current_epoch=1)["stop_train"] is False


def test_zero_energy_is_fine_when_the_cost_ignores_energy(client: TestClient) -> None:
    job_id = register(client, eta_knob=0.0)["job_id"]  # time only: no energy meter needed
    trial = predict(client, job_id)
    done = report(client, trial, energy=0.0, time=10.0, metric=0.9)
    assert done["converged"] is True
    assert client.get(f"/jobs/{job_id}").json()["min_cost"] == 300.0 * 10.0


def _poison(client: TestClient | httpx.Client, job_id: str) -> None:
    """A plausible-looking but absurdly cheap run: 1 ms at 100 W converges, min_cost ~0.15."""
    trial = client.get("/jobs/batch_size", params={"job_id": job_id}).json()
    body = {**trial, "time": 0.001, "energy": 0.1, "metric": 0.9, "current_epoch": 1}
    assert client.post("/report", json=body).json()["converged"] is True


def _first_epoch_stops(client: TestClient | httpx.Client, job_id: str) -> bool:
    trial = client.get("/jobs/batch_size", params={"job_id": job_id}).json()
    body = {**trial, "time": 10.0, "energy": 1000.0, "metric": 0.1, "current_epoch": 1}
    stop: bool = client.post("/report", json=body).json()["stop_train"]
    return stop


def test_reset_recovers_a_poisoned_job(make_client: Callable[..., TestClient]) -> None:
    client = make_client(token="s3cret")
    client.headers["Authorization"] = "Bearer s3cret"
    job_id = register(client)["job_id"]
    _poison(client, job_id)
    assert _first_epoch_stops(client, job_id)  # every later trial is stopped at its first epoch
    running = predict(client, job_id)

    client.headers["Authorization"] = "Bearer wrong"
    assert client.post("/admin/jobs/reset", params={"job_id": job_id}).status_code == 401
    client.headers["Authorization"] = "Bearer s3cret"
    reset = client.post("/admin/jobs/reset", params={"job_id": job_id})
    assert reset.status_code == 200, reset.text
    assert reset.json() | {"created_at": 0} == {
        "job_id": job_id,
        "stage": "pruning",
        "num_trials": 3,
        "min_cost": None,
        "min_cost_batch_size": None,
        "created_at": 0,
    }
    assert not _first_epoch_stops(client, job_id)  # trains again; pruning starts over
    trials = client.get(f"/jobs/{job_id}").json()["trials"]
    assert len(trials) == 4 and trials[0]["cost"] < 1  # the history is kept
    assert trials[3]["exploration"] and trials[3]["batch_size"] == 64  # the default first, again
    # A trial that was running at the reset ends as usual but no longer drives pruning.
    assert trials[2]["trial_number"] == running["trial_number"]
    assert trials[2]["exploration"] is False and trials[2]["status"] == "running"
    assert client.post("/admin/jobs/reset", params={"job_id": "nope"}).status_code == 404


def test_without_a_token_only_local_clients_may_reset(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    # TestClient's peer address is "testclient", not loopback.
    refused = client.post("/admin/jobs/reset", params={"job_id": job_id})
    assert refused.status_code == 403 and "token" in refused.json()["message"]


@pytest.mark.slow
def test_zeus_bso_reset_command(
    tmp_path: Path, servers: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    server = servers(f"sqlite:///{tmp_path / 'bso.db'}", "--token-file", str(token_file))
    headers = {"Authorization": "bearer s3cret"}  # the scheme is case-insensitive
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        assert http.post("/jobs", json=job_spec(job_id="test-poisoned")).status_code == 201
        _poison(http, "test-poisoned")
        assert _first_epoch_stops(http, "test-poisoned")
        monkeypatch.delenv("ZEUS_BSO_TOKEN", raising=False)
        args = ["bso", "reset", "test-poisoned", "--server-url", server.url]
        without = CliRunner().invoke(cli, args)
        assert without.exit_code != 0 and "401" in str(without.exception)
        result = CliRunner().invoke(cli, [*args, "--token-file", str(token_file)])
        assert result.exit_code == 0, result.output
        assert "job test-poisoned reset: stage pruning, no minimum cost" in result.output
        assert not _first_epoch_stops(http, "test-poisoned")
