"""Beyond the wire format (docs/bso-server.md): leases, infeasible jobs, reads, auth, limits."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.server.conftest import FakeClock, job_spec, local_client
from tests.server.test_api import predict, register, report
from zeus.server import ServerSettings, create_app


def test_silent_trial_fails_when_its_lease_expires(
    make_client: Callable[..., TestClient], clock: FakeClock
) -> None:
    client = make_client(lease_seconds=100.0)
    job_id = register(client)["job_id"]
    crashed = predict(client, job_id)  # the exploration of the default; its run dies silently
    clock.advance(99.0)
    assert predict(client, job_id)["batch_size"] == 64  # still in flight: a concurrent trial
    clock.advance(2.0)
    # The lease ran out: the exploration counts as failed and pruning moves on to the next size.
    after = predict(client, job_id)
    assert after["batch_size"] == 32
    trials = client.get(f"/jobs/{job_id}").json()["trials"]
    assert trials[0]["status"] == "failed" and "lease" in trials[0]["message"]
    late = report(client, crashed, metric=0.9)
    assert late["stop_train"] is True and late["converged"] is False


def test_each_report_renews_the_lease(
    make_client: Callable[..., TestClient], clock: FakeClock
) -> None:
    client = make_client(lease_seconds=100.0)
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    for epoch in range(1, 6):
        clock.advance(80.0)  # 400 s in total, far past one lease, but never 100 s of silence
        assert report(client, trial, current_epoch=epoch)["stop_train"] is False
    predict(client, job_id)
    assert client.get(f"/jobs/{job_id}").json()["trials"][0]["status"] == "running"


def test_job_whose_every_candidate_failed_answers_409(client: TestClient) -> None:
    job_id = register(client, batch_sizes=[32, 64, 128], default_batch_size=64)["job_id"]
    # Default, then downward until a failure, then upward until a failure: 64, 32, 128.
    for expected in (64, 32, 128):
        trial = predict(client, job_id)
        assert trial["batch_size"] == expected
        assert report(client, trial, current_epoch=10)["converged"] is False  # max_epochs
    for _ in range(2):  # stays answerable, never a 500
        refused = client.get("/jobs/batch_size", params={"job_id": job_id})
        assert refused.status_code == 409
        assert "cannot be optimised" in refused.json()["message"]
    assert client.get(f"/jobs/{job_id}").json()["stage"] == "infeasible"


def test_health_reports_database_and_needs_no_token(make_client: Callable[..., TestClient]) -> None:
    client = make_client(token="s3cret")
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_token_is_required_everywhere_but_health(make_client: Callable[..., TestClient]) -> None:
    client = make_client(token="s3cret")
    calls = [
        ("POST", "/jobs"),
        ("GET", "/jobs/batch_size?job_id=x"),
        ("POST", "/report"),
        ("PATCH", "/trials"),
        ("DELETE", "/jobs?job_id=x"),
        ("GET", "/jobs"),
        ("GET", "/jobs/x"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ]
    for method, path in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json() == {"message": "missing or wrong bearer token"}
    good = {"Authorization": "Bearer s3cret"}
    created = client.post("/jobs", json=job_spec(), headers=good)
    assert created.status_code == 201
    assert client.get("/jobs", headers=good).status_code == 200


def test_list_jobs_with_paging(client: TestClient) -> None:
    ids = [register(client, job_id=f"test-{i}")["job_id"] for i in range(3)]
    listed = client.get("/jobs").json()
    assert [j["job_id"] for j in listed] == ids
    assert listed[0] == {
        "job_id": "test-0",
        "stage": "pruning",
        "num_trials": 0,
        "min_cost": None,
        "min_cost_batch_size": None,
        "created_at": listed[0]["created_at"],
    }
    page = client.get("/jobs", params={"limit": 1, "offset": 1}).json()
    assert [j["job_id"] for j in page] == ["test-1"]
    assert client.get("/jobs", params={"limit": 0}).status_code == 422


def test_job_detail_has_spec_stage_min_cost_and_trials(client: TestClient) -> None:
    job_id = register(client, job_id="test-a/b")["job_id"]  # a slash in the id still works
    trial = predict(client, job_id)
    report(client, trial, metric=0.9, time=2.0, energy=100.0, current_epoch=1)
    running = predict(client, job_id)
    detail = client.get(f"/jobs/{job_id}").json()
    assert detail["spec"]["job_id"] == job_id and detail["spec"]["batch_sizes"] == [
        32,
        64,
        128,
        256,
    ]
    assert detail["stage"] == "pruning" and detail["num_trials"] == 2
    assert detail["min_cost"] == 0.5 * 100.0 + 0.5 * 300.0 * 2.0
    assert detail["min_cost_batch_size"] == 64
    first, second = detail["trials"]
    assert first["status"] == "succeeded" and first["converged"] is True
    assert first["time"] == 2.0 and first["energy"] == 100.0 and first["current_epoch"] == 1
    assert second["trial_number"] == running["trial_number"] and second["status"] == "running"
    assert second["lease_expires_at"] is not None


def test_metrics_in_prometheus_text_format(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    report(client, predict(client, job_id), metric=0.9)
    predict(client, job_id)
    client.get("/jobs/batch_size", params={"job_id": "nope"})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'zeus_bso_jobs{stage="pruning"} 1.0' in text
    assert 'zeus_bso_trials{status="running"} 1.0' in text
    assert 'zeus_bso_trials{status="succeeded"} 1.0' in text
    assert 'zeus_bso_requests_total{endpoint="predict",status="200"} 2.0' in text
    assert 'zeus_bso_requests_total{endpoint="predict",status="400"} 1.0' in text
    assert 'zeus_bso_request_duration_seconds_count{endpoint="report"} 1.0' in text
    assert "zeus_bso_database_up 1.0" in text


def test_body_larger_than_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=2000)
    big = job_spec(batch_sizes=list(range(1, 1000)), default_batch_size=1)
    response = client.post("/jobs", json=big)
    assert response.status_code == 413 and "2000 bytes" in response.json()["message"]

    def chunks() -> object:  # no Content-Length: the limit applies while streaming
        yield b'{"job_id_prefix": "' + b"x" * 3000 + b'"}'

    streamed = client.post("/jobs", content=chunks())  # type: ignore[arg-type]
    assert streamed.status_code == 413
    assert client.post("/jobs", json=job_spec()).status_code == 201


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/nothing")
    assert missing.status_code == 404 and missing.json() == {"message": "Not Found"}
    wrong = client.put("/report")
    assert wrong.status_code == 405 and "message" in wrong.json()


def test_database_errors_never_leak_sql(
    make_client: Callable[..., TestClient], database_url: str
) -> None:
    from sqlalchemy import create_engine, text

    client = make_client()
    job_id = register(client)["job_id"]
    engine = create_engine(database_url)
    with engine.begin() as conn:  # break the stored state behind the server's back
        state = conn.execute(text("SELECT policy_state_json FROM bso_jobs")).scalar_one()
        conn.execute(text("UPDATE bso_jobs SET policy_state_json = 'garbage'"))
    response = client.get("/jobs/batch_size", params={"job_id": job_id})
    assert response.status_code == 500
    assert response.json() == {"message": "internal server error"}
    with engine.begin() as conn:  # now a valid state, but a table gone: the SQL itself fails
        conn.execute(text("UPDATE bso_jobs SET policy_state_json = :s"), {"s": state})
        conn.execute(text("DROP TABLE bso_trials"))
    engine.dispose()
    broken = client.get("/jobs/batch_size", params={"job_id": job_id})
    assert broken.status_code in (500, 503)
    assert set(broken.json()) == {"message"}
    for leak in ("SELECT", "bso_trials", "Traceback", job_id):
        assert leak not in broken.text


def test_unreachable_database_is_503_and_health_says_so(clock: FakeClock) -> None:
    from tests.server.conftest import free_port

    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    app = create_app(ServerSettings(database_url=url, migrate=False), clock=clock)
    with local_client(app) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json() == {"status": "degraded", "database": "unreachable"}
        for response in (client.get("/jobs"), client.post("/jobs", json=job_spec())):
            assert response.status_code == 503
            assert response.json() == {"message": "database unavailable; retry later"}
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "zeus_bso_database_up 0.0" in metrics.text


def test_a_dead_trial_is_charged_at_least_the_failure_budget(
    make_client: Callable[..., TestClient], clock: FakeClock, database_url: str
) -> None:
    import json

    from sqlalchemy import create_engine, text

    client = make_client(lease_seconds=100.0)
    job_id = register(client, num_pruning_rounds=0, beta_knob=3.0)["job_id"]  # bandit at once
    done = predict(client, job_id)
    report(client, done, metric=0.9, time=10.0, energy=1000.0)  # converged: min_cost 1250
    silent = predict(client, job_id)  # dies before its first report
    crashed = predict(client, job_id)
    report(client, crashed, time=1.0, energy=100.0)  # dies after one cheap epoch
    client.patch("/trials", json=silent)
    clock.advance(101.0)
    predict(client, job_id)  # the lease of `crashed` has run out
    engine = create_engine(database_url)
    with engine.connect() as conn:
        state = json.loads(
            conn.execute(text("SELECT policy_state_json FROM bso_jobs")).scalar_one()
        )
    engine.dispose()
    min_cost = 0.5 * 1000.0 + 0.5 * 300.0 * 10.0
    observed = sorted(c for costs in state["costs"].values() for c in costs)
    assert observed == [min_cost, 3.0 * min_cost, 3.0 * min_cost]
