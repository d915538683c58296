"""`kill -9` in the middle of a load run, restart on the same database: nothing acknowledged is lost
and, with the default settings, no job stays stuck one lease-length after the restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import LiveServer, job_spec

pytestmark = pytest.mark.slow

JOBS = 6
DEFAULT_LEASE_FLOOR_S = 60.0  # the jobs here report every few milliseconds: leases are the floor
PAGE = {"trials_limit": 1000}


class Ledger:
    """Every answer the server acknowledged before it died."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.predicted: list[dict[str, Any]] = []
        self.reported: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def size(self) -> int:
        with self.lock:
            return len(self.predicted) + len(self.reported)


def _load(url: str, job_id: str, ledger: Ledger) -> None:
    """Recurring job: predict, report epochs until told to stop, again, until the server dies."""
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            while True:
                trial = client.get("/jobs/batch_size", params={"job_id": job_id}).json()
                with ledger.lock:
                    ledger.predicted.append(trial)
                for epoch in range(1, 4):
                    body = {**trial, "time": 5.0 * epoch, "energy": 900.0 * epoch}
                    body.update(metric=0.2 * epoch, current_epoch=epoch)
                    answer = client.post("/report", json=body).json()
                    with ledger.lock:
                        ledger.reported.append((body, answer))
                    if answer["stop_train"]:
                        break
    except (httpx.HTTPError, KeyError, ValueError):
        return  # the server is gone: whatever was acknowledged is in the ledger


@dataclass
class Restarted:
    server: LiveServer
    job_ids: list[str]
    last_lease: float


def _databases(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """A fresh database on each backend this machine has (SQLite always)."""
    urls = [f"sqlite:///{tmp_path / 'bso.db'}"]
    for fixture in ("postgres_cluster", "mariadb_server"):
        try:
            urls.append(request.getfixturevalue(fixture).new_database())
        except pytest.skip.Exception:
            continue  # the fixture says why; SQLite still runs
    return urls


def _crash_and_restart(database_url: str, servers: Callable[..., LiveServer]) -> Restarted:
    """Load, SIGKILL mid-flight, restart on the same database; nothing acknowledged is lost."""
    server = servers(database_url)  # default settings
    job_ids = [f"test-crash-{i}" for i in range(JOBS)]
    for job_id in job_ids:
        assert httpx.post(server.url + "/jobs", json=job_spec(job_id=job_id)).status_code == 201
    ledger = Ledger()
    threads = [threading.Thread(target=_load, args=(server.url, j, ledger)) for j in job_ids]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while ledger.size() < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL, mid-flight
    for thread in threads:
        thread.join(timeout=30)
    assert ledger.size() >= 150

    restarted = servers(database_url)
    details = {j: httpx.get(f"{restarted.url}/jobs/{j}", params=PAGE).json() for j in job_ids}
    assert all(d["num_trials"] < 1000 for d in details.values())  # one page holds them all
    trials = {(d["job_id"], t["trial_number"]): t for d in details.values() for t in d["trials"]}
    for predicted in ledger.predicted:
        stored = trials[(predicted["job_id"], predicted["trial_number"])]
        assert stored["batch_size"] == predicted["batch_size"]
    for body, answer in ledger.reported:
        stored = trials[(body["job_id"], body["trial_number"])]
        if answer["stop_train"]:
            assert stored["status"] != "running" and stored["converged"] == answer["converged"]
        else:
            assert stored["status"] != "running" or stored["current_epoch"] >= body["current_epoch"]
    leases = [t["lease_expires_at"] for t in trials.values() if t["status"] == "running"]
    assert leases, f"{database_url}: the crash left no trial running: nothing to recover from"
    assert max(leases) <= time.time() + DEFAULT_LEASE_FLOOR_S
    return Restarted(restarted, job_ids, max(leases))


def test_kill_9_mid_load_then_restart(
    request: pytest.FixtureRequest, tmp_path: Path, servers: Callable[..., LiveServer]
) -> None:
    """Every backend crashes and restarts first; then one lease-length wait covers them all (one
    wait per backend would cost a minute each)."""
    restarts = [_crash_and_restart(url, servers) for url in _databases(request, tmp_path)]
    # Trials orphaned by the crash fail once their lease runs out, a lease sized from the jobs'
    # epochs (the floor here), not the 24 h hard cap; then no job is stuck in pruning.
    time.sleep(max(0.0, max(r.last_lease for r in restarts) + 0.5 - time.time()))
    for r in restarts:
        for job_id in r.job_ids:
            response = httpx.get(r.server.url + "/jobs/batch_size", params={"job_id": job_id})
            assert response.status_code == 200, response.text
            after = httpx.get(f"{r.server.url}/jobs/{job_id}", params=PAGE).json()
            assert [t for t in after["trials"][:-1] if t["status"] == "running"] == []
            # A dead exploration no longer holds pruning up: the new trial explores (or pruning is
            # over).
            assert after["stage"] != "pruning" or after["trials"][-1]["exploration"], after[
                "trials"
            ]
