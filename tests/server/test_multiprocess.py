"""Several real server processes on one database: decisions are serialised by the database.

Two `zeus serve` processes share one PostgreSQL (or SQLite) database; clients hit both at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.server.conftest import LiveServer, job_spec

pytestmark = pytest.mark.slow

THREADS = 12
PREDICTS_PER_THREAD = 8


def _predicts(url: str, job_id: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=60) as client:
        out = []
        for _ in range(PREDICTS_PER_THREAD):
            response = client.get("/jobs/batch_size", params={"job_id": job_id})
            assert response.status_code == 200, response.text
            out.append(response.json())
        return out


def _final_report(url: str, trial: dict[str, Any], energy_j: float) -> dict[str, Any]:
    body = {**trial, "time": 10.0, "energy": energy_j, "metric": 0.9, "current_epoch": 3}
    response = httpx.post(url + "/report", content=json.dumps(body), timeout=60)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_two_processes_never_share_a_trial_number_nor_double_count(
    database_url: str, servers: Callable[..., LiveServer]
) -> None:
    first = servers(database_url)
    second = servers(database_url)  # migrated already: it finds the schema at head
    urls = [first.url, second.url]
    spec = job_spec(job_id="test-mp", batch_sizes=[16, 32, 64, 128], default_batch_size=32)
    assert httpx.post(first.url + "/jobs", json=spec).status_code == 201

    with ThreadPoolExecutor(THREADS) as pool:
        batches = pool.map(lambda i: _predicts(urls[i % 2], "test-mp"), range(THREADS))
        trials = [t for batch in batches for t in batch]
    numbers = sorted(t["trial_number"] for t in trials)
    assert numbers == list(range(1, THREADS * PREDICTS_PER_THREAD + 1))

    # Every trial gets six concurrent final reports with different energies through both servers.
    reported = trials[:20]
    jobs = [(t, 1000.0 + 10 * k) for t in reported for k in range(6)]
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda i: _final_report(urls[i % 2], *jobs[i]), range(len(jobs))))
    for i in range(len(reported)):
        outcomes = answers[6 * i : 6 * i + 6]
        assert all(a == outcomes[0] for a in outcomes), outcomes  # the first decided for all
        assert outcomes[0]["stop_train"] is True and outcomes[0]["converged"] is True

    engine = create_engine(database_url)
    with engine.connect() as conn:
        state = json.loads(
            conn.execute(text("SELECT policy_state_json FROM bso_jobs")).scalar_one()
        )
        rows = conn.execute(
            text("SELECT status, exploration FROM bso_trials WHERE job_id = 'test-mp'")
        ).all()
    engine.dispose()
    observed = sum(len(costs) for costs in state["costs"].values())
    assert observed == len(reported)  # one observation per trial, however many reports raced
    assert sum(1 for r in rows if r.status == "succeeded") == len(reported)
    assert sum(1 for r in rows if r.exploration) == 1  # one exploration in flight, never two


def test_zeus_serve_with_several_workers(
    database_url: str, servers: Callable[..., LiveServer]
) -> None:
    server = servers(database_url, "--workers", "2")
    spec = job_spec(job_id="test-workers")
    assert httpx.post(server.url + "/jobs", json=spec).status_code == 201
    with ThreadPoolExecutor(8) as pool:
        trials = [
            t
            for b in pool.map(lambda _: _predicts(server.url, "test-workers"), range(8))
            for t in b
        ]
    assert sorted(t["trial_number"] for t in trials) == list(range(1, 8 * PREDICTS_PER_THREAD + 1))
