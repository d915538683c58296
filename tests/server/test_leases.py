"""Leases sized from what the job has shown: a dead trial is detected in minutes, not in a day."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import FakeClock
from tests.server.test_api import predict, register, report
from zeus.server import ServerSettings
from zeus.server.leases import LeasePolicy

HOUR = 3600.0


def _trial(client: TestClient, job_id: str, number: int) -> dict[str, Any]:
    trials = client.get(f"/jobs/{job_id}", params={"trials_limit": 1000}).json()["trials"]
    found: dict[str, Any] = next(t for t in trials if t["trial_number"] == number)
    return found


def test_a_dead_trial_of_a_job_with_short_epochs_fails_within_minutes(
    client: TestClient, clock: FakeClock
) -> None:
    """Default settings: epochs of 30 s give a 90 s lease (3 epochs), not the 24 h hard cap."""
    job_id = register(client)["job_id"]
    first = predict(client, job_id)
    assert _trial(client, job_id, 1)["lease_expires_at"] == clock.now + 24 * HOUR  # nothing shown
    clock.advance(30.0)
    report(client, first, current_epoch=1)
    assert _trial(client, job_id, 1)["lease_expires_at"] == clock.now + 90.0
    clock.advance(30.0)
    report(client, first, current_epoch=2, metric=0.9)  # converged
    dead = predict(client, job_id)  # the next exploration; its process dies silently
    assert _trial(client, job_id, dead["trial_number"])["lease_expires_at"] == clock.now + 90.0
    clock.advance(89.0)
    assert predict(client, job_id)["trial_number"] == 3  # a concurrent trial: still in flight
    assert _trial(client, job_id, dead["trial_number"])["status"] == "running"
    clock.advance(2.0)
    after = predict(client, job_id)
    dead_now = _trial(client, job_id, dead["trial_number"])
    assert dead_now["status"] == "failed" and "lease" in dead_now["message"]
    assert after["batch_size"] != dead["batch_size"]  # pruning moved on


def test_the_longest_epoch_sets_the_lease_within_floor_and_ceiling(
    make_client: Callable[..., TestClient], clock: FakeClock
) -> None:
    client = make_client(lease_floor_seconds=120.0, lease_ceiling_seconds=HOUR)
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    lease_s = []
    for epoch, gap_s in enumerate([10.0, 50.0, 20.0], start=1):
        clock.advance(gap_s)
        report(client, trial, current_epoch=epoch)
        lease_s.append(_trial(client, job_id, 1)["lease_expires_at"] - clock.now)
    # 3 x the longest epoch so far, never under the floor, never shrinking.
    assert lease_s == [120.0, 150.0, 150.0]
    for first_epoch_s, lease in [(1000.0, 3000.0), (2000.0, HOUR)]:  # ... and under the ceiling
        other = register(client)["job_id"]
        trial = predict(client, other)  # the first trial of a job waits up to the hard cap
        clock.advance(first_epoch_s)
        report(client, trial, current_epoch=1)
        assert _trial(client, other, 1)["lease_expires_at"] - clock.now == lease


def test_lease_policy_limits() -> None:
    leases = LeasePolicy.from_settings(ServerSettings(lease_seconds=600.0))
    assert leases.length_s(None) == 600.0  # nothing shown yet: the hard cap
    assert leases.length_s(0.0) == 60.0  # the floor
    assert leases.length_s(100.0) == 300.0
    assert leases.length_s(1000.0) == 600.0  # the hard cap bounds every lease
    assert leases.tight(1000.0) and not leases.tight(100.0)
    default = LeasePolicy.from_settings(ServerSettings())
    assert default.length_s(3 * HOUR) == 6 * HOUR  # the ceiling


def test_a_report_past_the_lease_revives_a_trial_nobody_failed_yet(
    client: TestClient, clock: FakeClock
) -> None:
    """The server was down (or its database stalled) for longer than the lease: the trial's first
    report afterwards proves it alive, and the long silence lengthens the job's leases."""
    job_id = register(client)["job_id"]
    trial = predict(client, job_id)
    clock.advance(10.0)
    report(client, trial, current_epoch=1)  # lease: the 60 s floor
    clock.advance(120.0)  # an outage: no request reached the job
    assert report(client, trial, current_epoch=2)["stop_train"] is False
    revived = _trial(client, job_id, 1)
    assert revived["status"] == "running" and revived["lease_expires_at"] == clock.now + 360.0
    clock.advance(361.0)  # now it is gone: the next batch size request fails it
    predict(client, job_id)
    assert _trial(client, job_id, 1)["status"] == "failed"
    assert report(client, trial, current_epoch=3)["stop_train"] is True  # too late


@pytest.mark.parametrize("field", ["lease_floor_seconds", "lease_ceiling_seconds"])
def test_lease_settings_are_validated(field: str) -> None:
    from zeus.errors import ZeusConfigError

    with pytest.raises(ZeusConfigError, match=field):
        ServerSettings.from_env({f"ZEUS_BSO_{field.upper()}": "0"})
