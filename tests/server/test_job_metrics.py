"""Per job metrics of the BSO server: its latest finished trial, best cost, and the energy it saved
against the default batch size (failed tries counted), read from the database at scrape time on
every backend."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.server.test_api import predict, register, report


def _job_samples(client: TestClient) -> dict[tuple[str, str], float]:
    """(metric name, job id) -> value of every per job gauge."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, s.labels["job_id"]): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name.startswith("zeus_bso_job_")
    }


def test_latest_trial_and_energy_saved_per_job(client: TestClient) -> None:
    job = register(client, job_id_prefix="resnet")["job_id"]
    idle = register(client, job_id_prefix="bert")["job_id"]
    first = predict(client, job)  # the default batch size, 64
    assert first["batch_size"] == 64
    report(client, first, energy=100.0, time=2.0, metric=0.9)  # converged, cost 350
    second = predict(client, job)
    report(client, second, energy=80.0, time=2.0, metric=0.9)  # converged, cost 340
    third = predict(client, job)
    stopped = report(client, third, energy=500.0, time=5.0, metric=0.1)  # cost 1000 > 2 * 340
    assert stopped == {"stop_train": True, "converged": False, "message": stopped["message"]}
    predict(client, job)  # running: not counted yet
    predict(client, idle)

    samples = _job_samples(client)
    assert samples[("zeus_bso_job_last_trial_number", job)] == 3.0
    assert samples[("zeus_bso_job_last_trial_batch_size", job)] == third["batch_size"]
    assert samples[("zeus_bso_job_last_trial_cost", job)] == 0.5 * 500.0 + 0.5 * 300.0 * 5.0
    assert samples[("zeus_bso_job_last_trial_energy_joules", job)] == 500.0
    assert samples[("zeus_bso_job_last_trial_time_seconds", job)] == 5.0
    assert samples[("zeus_bso_job_last_trial_converged", job)] == 0.0
    assert samples[("zeus_bso_job_converged_trials", job)] == 2.0
    assert samples[("zeus_bso_job_min_cost", job)] == 340.0
    assert samples[("zeus_bso_job_best_batch_size", job)] == second["batch_size"]
    assert samples[("zeus_bso_job_default_energy_joules", job)] == 100.0
    # Two recurrences at the default would have drawn 200 J; the three tries drew 680 J.
    assert samples[("zeus_bso_job_energy_saved_joules", job)] == 2 * 100.0 - 680.0

    # A job with no finished trial: counted, nothing else claimed.
    assert samples[("zeus_bso_job_converged_trials", idle)] == 0.0
    assert {name for name, job_id in samples if job_id == idle} == {"zeus_bso_job_converged_trials"}


def test_saved_energy_follows_later_recurrences(client: TestClient) -> None:
    job = register(client, batch_sizes=[32, 64], default_batch_size=64)["job_id"]
    report(client, predict(client, job), energy=100.0, time=2.0, metric=0.9)
    report(client, predict(client, job), energy=60.0, time=1.0, metric=0.9)
    assert _job_samples(client)[("zeus_bso_job_energy_saved_joules", job)] == 40.0
    for _ in range(3):
        trial = predict(client, job)
        energy = 60.0 if trial["batch_size"] == 32 else 120.0
        report(client, trial, energy=energy, time=1.0, metric=0.9)
    samples = _job_samples(client)
    trials = client.get(f"/jobs/{job}").json()["trials"]
    at_default = [t["energy"] for t in trials if t["batch_size"] == 64]
    default_j = sum(at_default) / len(at_default)
    assert samples[("zeus_bso_job_default_energy_joules", job)] == default_j
    expected = 5 * default_j - sum(t["energy"] for t in trials)
    assert samples[("zeus_bso_job_energy_saved_joules", job)] == expected
    assert samples[("zeus_bso_job_last_trial_number", job)] == 5.0
