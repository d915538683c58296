"""Measurements as Prometheus metrics: every finished window, and power timelines.

Off by default. Turn it on with one argument (``ZeusMonitor(exporter=...)``,
``PowerMonitor(exporter=...)``) or, in a launched job, one variable: ``ZEUS_METRICS=pull:<port>``
serves ``/metrics`` from the process, ``ZEUS_METRICS=push:<pushgateway URL>`` pushes to a Prometheus
Pushgateway. Series carry a ``job_id`` label (``ZEUS_JOB_ID`` by default; Prometheus keeps ``job``
for the scrape target).

Window names become a ``window`` label with their trailing numbers dropped (``zeus-dataloader-epoch-3``
-> ``zeus-dataloader-epoch``, ``__GlobalPowerLimitOptimizer_300`` -> ``__GlobalPowerLimitOptimizer``),
so that a series per epoch or per power limit does not pile up; pass ``window_label=`` to choose.
Needs ``prometheus-client`` (``pip install 'zeus-energy[prometheus]'``), imported only when an
exporter is made.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from zeus.errors import ZeusConfigError, check_range

if TYPE_CHECKING:
    from zeus.monitor.energy import Measurement

logger = logging.getLogger(__name__)

METRICS_ENV = "ZEUS_METRICS"
_TRAILING_NUMBERS = re.compile(r"([-_]\d+)+$")


def default_window_label(name: str) -> str:
    """The window name without trailing ``-<n>``/``_<n>`` parts."""
    return _TRAILING_NUMBERS.sub("", name) or name


def _prometheus_client() -> Any:
    try:
        import prometheus_client
    except ImportError as e:
        raise ZeusConfigError(
            "metrics export needs prometheus-client: pip install 'zeus-energy[prometheus]'"
        ) from e
    return prometheus_client


class PrometheusExporter:
    """Exports window measurements and power samples of one job; pull (port) or push (gateway).

    Args:
        job_id: value of the ``job_id`` label (default ``ZEUS_JOB_ID``, else ``"zeus"``).
        port: serve ``/metrics`` on this port (0: any free port, see ``port`` after start).
        addr: address to serve on (default loopback).
        pushgateway: push to this Pushgateway URL instead, at most every ``push_interval_s`` and at
            `close()`.
        window_label: maps a window name to its ``window`` label.
    """

    def __init__(
        self,
        job_id: str | None = None,
        *,
        port: int | None = None,
        addr: str = "127.0.0.1",
        pushgateway: str | None = None,
        push_interval_s: float = 10.0,
        window_label: Callable[[str], str] = default_window_label,
    ) -> None:
        if (port is None) == (pushgateway is None):
            raise ZeusConfigError("exporter: give exactly one of port (pull) or pushgateway (push)")
        if port is not None:
            check_range("port", port, ge=0, le=65535)
        check_range("push_interval_s", push_interval_s, ge=0)
        client = _prometheus_client()
        self.job_id = job_id or os.environ.get("ZEUS_JOB_ID") or "zeus"
        self.pushgateway = pushgateway
        self.push_interval_s = push_interval_s
        self.window_label = window_label
        self.registry = client.CollectorRegistry()
        labels = ["job_id", "window"]
        self._energy = client.Counter(
            "zeus_window_energy_joules",
            "GPU energy of finished measurement windows, per GPU",
            [*labels, "gpu"],
            registry=self.registry,
        )
        self._time = client.Counter(
            "zeus_window_time_seconds",
            "Time of finished measurement windows",
            labels,
            registry=self.registry,
        )
        self._windows = client.Counter(
            "zeus_windows", "Finished measurement windows", labels, registry=self.registry
        )
        self._power = client.Gauge(
            "zeus_gpu_power_watts",
            "Last sampled GPU power",
            ["job_id", "gpu"],
            registry=self.registry,
        )
        self._series: dict[str, tuple[Any, Any, dict[int, Any]]] = {}
        self._lock = threading.Lock()
        self._last_push_s = -float("inf")
        self._server: Any = None
        self.port: int | None = None
        if port is not None:
            self._server, _thread = client.start_http_server(port, addr, registry=self.registry)
            self.port = int(self._server.server_port)
            logger.info("metrics: serving /metrics on %s:%d", addr, self.port)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PrometheusExporter | None:
        """The exporter ``ZEUS_METRICS`` asks for (``pull:<port>`` or ``push:<URL>``), or None."""
        env = os.environ if environ is None else environ
        spec = env.get(METRICS_ENV, "").strip()
        if not spec:
            return None
        kind, _, arg = spec.partition(":")
        if kind == "pull" and arg.isdigit():
            return cls(env.get("ZEUS_JOB_ID"), port=int(arg))
        if kind == "push" and arg.startswith(("http://", "https://")):
            return cls(env.get("ZEUS_JOB_ID"), pushgateway=arg)
        raise ZeusConfigError(
            f"{METRICS_ENV}={spec!r}: allowed 'pull:<port>' or 'push:<Pushgateway URL>'"
        )

    # -- what monitors report -----------------------------------------------------------------------

    def observe_window(self, name: str, measurement: Measurement) -> None:
        """Count one finished window."""
        window = self.window_label(name)
        series = self._series.get(window)
        if series is None:  # label lookups are the costly part: once per window label
            series = self._series[window] = (
                self._time.labels(self.job_id, window),
                self._windows.labels(self.job_id, window),
                {},
            )
        time_s, count, energy = series
        for gpu, joules in measurement.gpu_energy_j.items():
            if gpu not in energy:
                energy[gpu] = self._energy.labels(self.job_id, window, str(gpu))
            energy[gpu].inc(max(joules, 0.0))
        time_s.inc(max(measurement.time_s, 0.0))
        count.inc()
        self._maybe_push()

    def observe_power(self, gpu: int, watts: float) -> None:
        """Record one power sample."""
        self._power.labels(self.job_id, str(gpu)).set(watts)

    # -- push and close -----------------------------------------------------------------------------

    def _maybe_push(self) -> None:
        if self.pushgateway is None:
            return
        now_s = time.monotonic()
        if now_s - self._last_push_s >= self.push_interval_s:
            self.push()

    def push(self) -> None:
        """Push every series now (push mode); a failure is logged, never raised into training."""
        if self.pushgateway is None:
            return
        with self._lock:
            self._last_push_s = time.monotonic()
            try:
                _prometheus_client().push_to_gateway(
                    self.pushgateway,
                    job="zeus",
                    registry=self.registry,
                    grouping_key={"job_id": self.job_id},
                    timeout=5,
                )
            except OSError as e:
                logger.warning("metrics: push to %s failed: %s", self.pushgateway, e)

    def close(self) -> None:
        """Push a last time (push mode) or stop serving (pull mode)."""
        self.push()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


_from_env: dict[str, PrometheusExporter | None] = {}
_from_env_lock = threading.Lock()


def exporter_from_env() -> PrometheusExporter | None:
    """The process's one exporter from ``ZEUS_METRICS`` (None when unset): every monitor of the
    process that was not given an exporter shares it, so a pull port is opened once. It is closed
    when the process exits (push mode: a last push, so a short job's final windows are not lost)."""
    spec = os.environ.get(METRICS_ENV, "").strip()
    with _from_env_lock:
        if spec not in _from_env:
            exporter = _from_env[spec] = PrometheusExporter.from_env()
            if exporter is not None:
                atexit.register(exporter.close)  # push mode: the last windows reach the gateway
        return _from_env[spec]
