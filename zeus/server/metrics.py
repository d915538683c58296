"""Prometheus metrics: request counters and latencies of this process, job/trial counts from the database.

Request metrics are per process (with ``--workers N`` each worker counts its own requests); the job
and trial gauges are read from the database at scrape time, so every worker reports the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

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
            counts = self.db.read(reads.counts)
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
