"""`kill -9` in the middle of a load run, restart on the same database: nothing acknowledged is lost
and, with the default settings, no job stays stuck one lease-length after the restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.server.conftest import LiveServer, job_spec

pytestmark = pytest.mark.slow

JOBS = 6
DEFAULT_LEASE_FLOOR_S = 60.0  # the jobs here report every few milliseconds: leases are the floor


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


def test_kill_9_mid_load_then_restart(
    database_url: str, servers: Callable[..., LiveServer]
) -> None:
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
    page = {"trials_limit": 1000}
    details = {j: httpx.get(f"{restarted.url}/jobs/{j}", params=page).json() for j in job_ids}
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

    # Trials orphaned by the crash fail once their lease runs out, a lease sized from the jobs'
    # epochs (the floor here), not the 24 h hard cap; then no job is stuck in pruning.
    leases = [t["lease_expires_at"] for t in trials.values() if t["status"] == "running"]
    assert leases, "the crash left no trial running: nothing to recover from"
    assert max(leases) <= time.time() + DEFAULT_LEASE_FLOOR_S
    time.sleep(max(0.0, max(leases) + 0.5 - time.time()))
    for job_id in job_ids:
        response = httpx.get(restarted.url + "/jobs/batch_size", params={"job_id": job_id})
        assert response.status_code == 200, response.text
        after = httpx.get(f"{restarted.url}/jobs/{job_id}", params=page).json()
        assert [t for t in after["trials"][:-1] if t["status"] == "running"] == []
        # A dead exploration no longer holds pruning up: the new trial explores (or pruning is over).
        assert after["stage"] != "pruning" or after["trials"][-1]["exploration"], after["trials"]
