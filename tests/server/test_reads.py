"""Reads of big jobs: the trial list comes in pages, and every read runs off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from tests.server.test_api import predict, register


def test_job_detail_pages_its_trials(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    for _ in range(250):
        predict(client, job_id)

    def numbers(**params: Any) -> list[int]:
        response = client.get(f"/jobs/{job_id}", params=params)
        assert response.status_code == 200, response.text
        assert response.json()["num_trials"] == 250
        return [t["trial_number"] for t in response.json()["trials"]]

    assert numbers() == list(range(1, 101))  # the first page by default
    assert numbers(trials_after=100) == list(range(101, 201))
    assert numbers(trials_after=200, trials_limit=1000) == list(range(201, 251))
    assert numbers(trials_after=250) == []
    assert len(numbers(trials_limit=1000)) == 250
    for bad in ({"trials_limit": 0}, {"trials_limit": 1001}, {"trials_after": -1}):
        assert client.get(f"/jobs/{job_id}", params=bad).status_code == 422, bad


def test_reads_run_off_the_event_loop(client: TestClient) -> None:
    job_id = register(client)["job_id"]
    predict(client, job_id)
    on_loop: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread: fine
        on_loop.append(statement)

    engine = client.app.state.db.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", record)
    try:
        for path in ("/health", "/jobs", f"/jobs/{job_id}", "/metrics"):
            assert client.get(path).status_code == 200, path
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert on_loop == []
