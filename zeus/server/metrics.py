"""Prometheus metrics: request counters and latencies of this process; from the database, job and
trial counts and, per job, its latest finished trial and the energy it saved.

Request metrics are per process (with ``--workers N`` each worker counts its own requests); the
database gauges are read at scrape time, so every worker reports the same. Per job (label
``job_id``): ``zeus_bso_job_last_trial_{number,batch_size,cost,energy_joules,time_seconds,converged}``
of the latest trial that ended with a measurement (one point per recurrence in Prometheus's
history), ``zeus_bso_job_min_cost`` and ``zeus_bso_job_best_batch_size``,
``zeus_bso_job_converged_trials``, ``zeus_bso_job_default_energy_joules`` (the mean energy of its
converged trials at the default batch size) and ``zeus_bso_job_energy_saved_joules``: that energy
for every converged trial, minus what every ended trial drew (failed tries included).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from zeus.server import reads
from zeus.server.db import Database

logger = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class _DatabaseCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("zeus_bso_jobs", "Registered jobs by stage.", labels=["stage"])
        trials = GaugeMetricFamily("zeus_bso_trials", "Trials by status.", labels=["status"])
        up = GaugeMetricFamily(
            "zeus_bso_database_up", "1 when the last scrape reached the database."
        )
        try:
            counts, figures = self.db.read(
                lambda conn: (reads.counts(conn), reads.job_figures(conn))
            )
        except Exception:  # a scrape must not fail because the database is down
            logger.warning("metrics: database unreachable", exc_info=True)
            up.add_metric([], 0.0)
            yield up
            return
        for stage, n in counts["jobs"]:
            jobs.add_metric([stage], n)
        for status, n in counts["trials"]:
            trials.add_metric([status], n)
        up.add_metric([], 1.0)
        yield from (jobs, trials, up)
        yield from _job_families(figures, counts["best"])


_LAST_TRIAL = (
    ("number", "trial_number", "Number of the job's latest finished trial (its recurrence)."),
    ("batch_size", "batch_size", "Batch size of the job's latest finished trial."),
    ("cost", "cost", "Energy-time cost of the job's latest finished trial."),
    ("energy_joules", "energy_j", "Energy of the job's latest finished trial."),
    ("time_seconds", "time_s", "Time of the job's latest finished trial."),
    ("converged", "converged", "1 when the job's latest finished trial reached its target."),
)


def _job_families(
    figures: list[reads.JobFigures], best: Sequence[tuple[str, float | None, int | None]]
) -> Iterator[Metric]:
    """Per job gauges (label ``job_id``)."""

    def family(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"zeus_bso_job_{name}", doc, labels=["job_id"])

    last = {name: family(f"last_trial_{name}", doc) for name, _, doc in _LAST_TRIAL}
    converged = family("converged_trials", "Trials of the job that reached their target.")
    default = family(
        "default_energy_joules",
        "Mean energy of the job's converged trials at its default batch size.",
    )
    saved = family(
        "energy_saved_joules",
        "Energy saved against the default batch size: its mean energy per converged trial, "
        "minus what every ended trial drew.",
    )
    min_cost = family("min_cost", "Lowest cost of a converged trial of the job.")
    best_bs = family("best_batch_size", "Batch size of the job's lowest cost.")
    for job in figures:
        converged.add_metric([job.job_id], job.converged_trials)
        if job.last_trial is not None:
            for name, column, _ in _LAST_TRIAL:
                last[name].add_metric([job.job_id], float(getattr(job.last_trial, column)))
        if job.default_energy_j is not None and job.energy_saved_j is not None:
            default.add_metric([job.job_id], job.default_energy_j)
            saved.add_metric([job.job_id], job.energy_saved_j)
    for job_id, cost, batch_size in best:
        if cost is not None and batch_size is not None:
            min_cost.add_metric([job_id], cost)
            best_bs.add_metric([job_id], batch_size)
    yield from (*last.values(), converged, default, saved, min_cost, best_bs)


class ServerMetrics:
    """One registry per app, so several apps in one process (tests) never collide."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "zeus_bso_requests",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "zeus_bso_request_duration_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(_DatabaseCollector(db))

    def observe(self, endpoint: str, status: int, duration_s: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
