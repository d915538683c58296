"""The BSO wire format (docs/bso-server.md), endpoint by endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.server.conftest import job_spec


def register(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/jobs", json=job_spec(**overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def predict(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get("/jobs/batch_size", params={"job_id": job_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def report(client: TestClient, trial: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {k: trial[k] for k in ("job_id", "batch_size", "trial_number")}
    body.update({"time": 10.0, "energy": 1000.0, "metric": 0.1, "current_epoch": 1, **fields})
    response = client.post("/report", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_register_generates_id_with_prefix_and_sorts_batch_sizes(client: TestClient) -> None:
    body = register(client, batch_sizes=[256, 32, 128, 64], job_id_prefix="resnet")
    assert body["job_id"].startswith("resnet-") and len(body["job_id"]) == len("resnet-") + 8
    int(body["job_id"][-8:], 16)
    assert body["batch_sizes"] == [32, 64, 128, 256]
    assert body["eta_knob"] == 0.5 and body["gpu_model"] == "NVIDIA A40"


def test_register_same_spec_again_is_200_and_different_spec_is_409(client: TestClient) -> None:
    first = register(client, job_id="test-fixed")
    again = client.post("/jobs", json=job_spec(job_id="test-fixed", batch_sizes=[256, 128, 64, 32]))
    assert again.status_code == 200 and again.json() == first
    other = client.post("/jobs", json=job_spec(job_id="test-fixed", eta_knob=0.9))
    assert other.status_code == 409
    assert "different spec" in other.json()["message"]


def test_json_bodies_without_content_type_header_are_accepted(client: TestClient) -> None:
    raw = json.dumps(job_spec(job_id="test-raw")).encode()
    response = client.post("/jobs", content=raw, headers={"content-type": ""})
    assert response.status_code == 201, response.text
    trial = predict(client, "test-raw")
    body = {**{k: trial[k] for k in trial}, "time": 1, "energy": 1, "metric": 0, "current_epoch": 1}
    answer = client.post("/report", content=json.dumps(body).encode())
    assert answer.status_code == 200 and answer.json()["stop_train"] is False
    ended = client.patch("/trials", content=json.dumps(trial).encode())
    assert ended.status_code == 200 and ended.json() is None


def test_predict_creates_a_new_trial_each_call(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    first, second, third = (predict(client, job_id) for _ in range(3))
    assert [t["trial_number"] for t in (first, second, third)] == [1, 2, 3]
    # Pruning starts at the default; while it runs, others get the cheapest known (the default).
    assert first["batch_size"] == 64 and second["batch_size"] == 64
    detail = client.get(f"/jobs/{job_id}").json()
    assert [t["exploration"] for t in detail["trials"]] == [True, False, False]


def test_report_continues_then_stops_on_convergence(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    going = report(client, trial, metric=0.2, current_epoch=1)
    assert going == {"stop_train": False, "converged": False, "message": "keep training"}
    done = report(client, trial, metric=0.7, current_epoch=2, time=20.0, energy=3000.0)
    assert done["stop_train"] is True and done["converged"] is True
    detail = client.get(f"/jobs/{job_id}").json()
    # cost = eta*E + (1-eta)*max_power*T = 0.5*3000 + 0.5*300*20
    assert detail["min_cost"] == 0.5 * 3000.0 + 0.5 * 300.0 * 20.0
    assert detail["min_cost_batch_size"] == 64
    assert detail["trials"][0]["status"] == "succeeded"


def test_lower_is_better_metric(client: TestClient) -> None:
    job_id = register(client, higher_is_better_metric=False, target_metric=40.0)["job_id"]
    trial = predict(client, job_id)
    assert report(client, trial, metric=55.0)["stop_train"] is False
    assert report(client, trial, metric=39.0, current_epoch=2)["converged"] is True


def test_max_epochs_ends_the_trial_unconverged(client: TestClient) -> None:
    job_id = register(client, max_epochs=3)["job_id"]
    trial = predict(client, job_id)
    assert report(client, trial, current_epoch=2)["stop_train"] is False
    last = report(client, trial, current_epoch=3)
    assert last["stop_train"] is True and last["converged"] is False
    assert "max_epochs" in last["message"]


def test_early_stop_when_cost_exceeds_beta_times_min_cost(client: TestClient) -> None:
    job_id = register(client, beta_knob=2.0)["job_id"]
    first = predict(client, job_id)
    report(client, first, metric=0.9, time=10.0, energy=1000.0)  # cost 1000
    second = predict(client, job_id)
    assert report(client, second, time=10.0, energy=1000.0)["stop_train"] is False
    over = report(client, second, time=30.0, energy=3000.0, metric=0.9, current_epoch=2)
    # cost 3000 > 2 * 1000: the trial ends, not converged even though the metric was reached
    assert (
        over
        == {
            "stop_train": True,
            "converged": False,
            "message": over["message"],
        }
        and "beta" in over["message"]
    )


def test_no_early_stop_when_beta_is_null(client: TestClient) -> None:
    job_id = register(client, beta_knob=None)["job_id"]
    report(client, predict(client, job_id), metric=0.9)
    second = predict(client, job_id)
    assert report(client, second, time=1e6, energy=2e8)["stop_train"] is False


def test_report_after_end_answers_the_stored_outcome(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    done = report(client, trial, metric=0.8, current_epoch=4)
    again = report(client, trial, metric=0.0, current_epoch=5, time=1e5, energy=1e7)
    assert again == done
    detail = client.get(f"/jobs/{job_id}").json()
    assert detail["trials"][0]["current_epoch"] == 4  # the late report changed nothing


def test_unknown_job_on_predict_and_report_is_400_with_message(client: TestClient) -> None:
    missing = client.get("/jobs/batch_size", params={"job_id": "nope"})
    assert missing.status_code == 400 and "nope" in missing.json()["message"]
    trial = {"job_id": "nope", "batch_size": 32, "trial_number": 1}
    body = {**trial, "time": 1, "energy": 1, "metric": 0, "current_epoch": 1}
    assert client.post("/report", json=body).status_code == 400


def test_unknown_trial_and_job_on_end_and_delete_are_404(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    wrong_bs = {**trial, "batch_size": 128}
    assert client.patch("/trials", json=wrong_bs).status_code == 404
    assert client.patch("/trials", json={**trial, "trial_number": 99}).status_code == 404
    assert client.patch("/trials", json={**trial, "job_id": "nope"}).status_code == 404
    assert client.delete("/jobs", params={"job_id": "nope"}).status_code == 404
    assert client.get("/jobs/nope").status_code == 404
    body = {**wrong_bs, "time": 1, "energy": 1, "metric": 0, "current_epoch": 1}
    assert client.post("/report", json=body).status_code == 404


def test_patch_trials_ends_running_trial_as_failed_idempotently(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    for _ in range(3):
        response = client.patch("/trials", json=trial)
        assert response.status_code == 200 and response.json() is None
    detail = client.get(f"/jobs/{job_id}").json()
    assert detail["trials"][0]["status"] == "failed"
    assert detail["trials"][0]["converged"] is False
    late = report(client, trial, metric=0.9)
    assert late["stop_train"] is True and late["converged"] is False


def test_delete_removes_job_and_trials(client: TestClient) -> None:
    job_id = register(client, job_id="test-del")["job_id"]
    predict(client, job_id)
    deleted = client.delete("/jobs", params={"job_id": job_id})
    assert deleted.status_code == 200 and deleted.json() is None
    assert client.get(f"/jobs/{job_id}").status_code == 404
    # The id is free again, with a fresh history.
    register(client, job_id="test-del")
    assert predict(client, "test-del")["trial_number"] == 1


def test_validation_errors_are_422_with_detail(client: TestClient) -> None:
    cases = [
        {"batch_sizes": []},
        {"batch_sizes": [32, 32], "default_batch_size": 32},
        {"batch_sizes": [0, 32], "default_batch_size": 32},
        {"default_batch_size": 48},
        {"batch_sizes": [2**63], "default_batch_size": 2**63},
        {"job_id": "other-1"},
        {"eta_knob": 1.5},
        {"beta_knob": 0},
        {"max_epochs": 0},
        {"gpu_model": ""},
        {"gpu_model": "x" * 257},
        {"gpu_model": "A40\x00"},
        {"job_id_prefix": "p" * 250},
        {"mab_seed": -1},
        {"max_power": 0},
        {"number_of_gpus": 0},
    ]
    for overrides in cases:
        response = client.post("/jobs", json=job_spec(**overrides))
        assert response.status_code == 422, (overrides, response.text)
        assert isinstance(response.json()["detail"], list)
    long_name = job_spec(gpu_model="NVIDIA " + "H100 80GB HBM3 " * 15)
    assert client.post("/jobs", json=long_name).status_code == 201


def test_report_rejects_non_finite_or_negative_measurements(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    base = {**trial, "time": 1.0, "energy": 1.0, "metric": 0.1, "current_epoch": 1}
    for field, value in [("time", -1), ("energy", -0.5), ("current_epoch", 0)]:
        assert client.post("/report", json={**base, field: value}).status_code == 422
    for field in ("time", "energy", "metric"):
        raw = json.dumps({**base, field: 0.0}).replace(f'"{field}": 0.0', f'"{field}": NaN')
        response = client.post("/report", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 422, (field, response.text)
        inf = raw.replace("NaN", "Infinity")
        assert client.post("/report", content=inf).status_code == 422


def test_ids_a_database_cannot_store_are_422_not_500(client: TestClient) -> None:
    for bad in ("a\x00b", "x" * 257, "tab\tbed"):
        assert client.get("/jobs/batch_size", params={"job_id": bad}).status_code == 422
        assert client.delete("/jobs", params={"job_id": bad}).status_code == 422
    assert client.get("/jobs/a%00b").status_code == 422
    trial = {"job_id": "a\x00b", "batch_size": 1, "trial_number": 1}
    assert client.patch("/trials", json=trial).status_code == 422


def test_job_ids_compare_byte_for_byte(client: TestClient) -> None:
    ids = ["test-Case", "test-case", "test-casé", "test-case-"]
    for job_id in ids:
        assert client.post("/jobs", json=job_spec(job_id=job_id)).status_code == 201, job_id
    for job_id in ids:
        assert predict(client, job_id)["trial_number"] == 1, job_id
    assert sorted(j["job_id"] for j in client.get("/jobs").json()) == sorted(ids)
    for padded in ("test-case ", " test-case"):
        assert client.post("/jobs", json=job_spec(job_id=padded)).status_code == 422
