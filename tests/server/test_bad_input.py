"""Input that once crashed the validation-error handler, and input that once came back whole."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import job_spec
from tests.server.test_api import predict, register

SURROGATE = "\\ud800"  # a lone UTF-16 surrogate as a JSON escape: valid JSON, not encodable text


def _raw(body: dict[str, object], field: str, key: bool = False) -> bytes:
    """``body`` as JSON with a lone surrogate in ``field``'s value (or as a new key)."""
    text = json.dumps({**body, field: "MARK"})
    if key:
        text = text.replace('"MARK"', "1").replace(f'"{field}"', f'"{field}{SURROGATE}"')
    else:
        text = text.replace('"MARK"', f'"x{SURROGATE}"')
    return text.encode()


def test_lone_surrogates_are_422_never_500(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    report = {**trial, "time": 1.0, "energy": 100.0, "metric": 0.5, "current_epoch": 1}
    # A missing field echoes the whole body, unknown fields included.
    no_power = {k: v for k, v in job_spec().items() if k != "max_power"}
    no_time = {k: v for k, v in report.items() if k != "time"}
    no_number = {k: v for k, v in trial.items() if k != "trial_number"}
    cases = [
        ("POST", "/jobs", _raw(job_spec(), "job_id")),
        ("POST", "/jobs", _raw(job_spec(), "gpu_model")),
        ("POST", "/jobs", _raw(no_power, "unknown")),
        ("POST", "/jobs", _raw(no_power, "unknown", key=True)),
        ("POST", "/report", _raw(report, "job_id")),
        ("POST", "/report", _raw(report, "metric")),
        ("POST", "/report", _raw(no_time, "unknown")),
        ("POST", "/report", _raw(no_time, "unknown", key=True)),
        ("PATCH", "/trials", _raw(trial, "job_id")),
        ("PATCH", "/trials", _raw(no_number, "extra", key=True)),
    ]
    with caplog.at_level(logging.ERROR):
        for method, path, body in cases:
            response = client.request(method, path, content=body)
            assert response.status_code == 422, (method, path, body, response.text)
            assert response.json()["detail"]  # encodable JSON, whatever it echoes
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    # The job is untouched and still works.
    assert predict(client, job_id)["trial_number"] == 2


def test_422_echoes_a_bounded_excerpt_of_the_input(client: TestClient) -> None:
    huge = list(range(100_000))  # over the 10,000 limit: once echoed whole, 589 KB
    response = client.post("/jobs", json=job_spec(batch_sizes=huge))
    assert response.status_code == 422 and len(response.content) < 2_000, len(response.content)
    assert response.json()["detail"][0]["loc"] == ["body", "batch_sizes"]
    invalid = list(range(-9_999, 0))  # every element invalid: one error each
    response = client.post("/jobs", json=job_spec(batch_sizes=invalid, default_batch_size=-1))
    assert response.status_code == 422
    assert len(response.content) < 8_000, len(response.content)
    detail = response.json()["detail"]
    assert len(detail) == 11 and detail[-1]["msg"] == "and 9990 more errors"
    long_id = "x" * 10_000
    response = client.get("/jobs/batch_size", params={"job_id": long_id})
    assert response.status_code == 422 and len(response.content) < 2_000


def test_registration_logs_a_bounded_line(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    sizes = list(range(1, 10_001))
    with caplog.at_level(logging.INFO, logger="zeus.server"):
        register(client, batch_sizes=sizes, default_batch_size=64)
    lines = [r.getMessage() for r in caplog.records if "registered" in r.getMessage()]
    assert len(lines) == 1 and len(lines[0]) < 200, lines
    assert "10000 batch sizes, 1 to 10000" in lines[0]
