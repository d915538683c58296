"""`PowerMonitor`: samples GPU power in a background thread into a timeline and/or a CSV log.

The CSV has one row per GPU per sample: ``timestamp_s,gpu,power_w`` (Unix time in seconds, GPU
index, watts). `zeus.analyze` integrates such logs; `ZeusMonitor` uses the timeline for GPUs that have
no energy counter.

Replay GPUs on virtual time need no thread: their power is known at every instant of their clock
(`GPU.power_timeline_w`), so samples are taken every ``interval_s`` of *virtual* time, from the moment
the monitor starts, whenever the timeline is read (``sample_once``, ``timeline``, ``energy_j``,
``stop``). Their ``timestamp_s`` is the replay clock (virtual seconds of work done in the process),
and two runs of the same training write the same samples.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from zeus.device.base import GPU
from zeus.errors import ZeusConfigError, ZeusDeviceError, check_range

if TYPE_CHECKING:
    from zeus.monitor.exporters import PrometheusExporter

logger = logging.getLogger(__name__)

CSV_HEADER = ("timestamp_s", "gpu", "power_w")

Sample = tuple[float, float]
"""(Unix time in seconds, watts)."""


def _interpolate_w(a: Sample, b: Sample, t: float) -> float:
    if b[0] == a[0]:
        return (a[1] + b[1]) / 2
    return a[1] + (b[1] - a[1]) * (t - a[0]) / (b[0] - a[0])


def integrate_j(samples: Sequence[Sample], start_s: float, end_s: float) -> float:
    """Trapezoid-rule energy of time-sorted ``samples`` over [start_s, end_s].

    Edges falling between two samples are interpolated; outside the samples' span the nearest sample
    is held. Needs at least one sample (with one sample the power is taken as constant).
    """
    if not samples:
        raise ZeusConfigError("cannot integrate power: no samples")
    if end_s <= start_s:
        return 0.0
    times = [s[0] for s in samples]
    lo = bisect.bisect_right(times, start_s)
    hi = bisect.bisect_left(times, end_s)
    points: list[Sample] = [(start_s, _power_at(samples, lo, start_s))]
    points.extend(samples[lo:hi])
    points.append((end_s, _power_at(samples, hi, end_s)))
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(points))


def _power_at(samples: Sequence[Sample], i: int, t: float) -> float:
    """Power at time ``t`` where ``i`` is its insertion point among the sample times."""
    if i == 0:
        return samples[0][1]
    if i >= len(samples):
        return samples[-1][1]
    return _interpolate_w(samples[i - 1], samples[i], t)


class PowerMonitor:
    """Background power sampler: ``timeline()``, ``energy_j(start, end)``, optional CSV log, and
    optionally the latest sample of each GPU as a Prometheus gauge (``exporter=``)."""

    def __init__(
        self,
        gpus: Sequence[GPU] | None = None,
        interval_s: float = 0.1,
        csv_path: str | os.PathLike[str] | None = None,
        exporter: PrometheusExporter | None = None,
    ) -> None:
        check_range("interval_s", interval_s, gt=0, le=3600)
        self.exporter = exporter
        if gpus is None:
            from zeus.device import get_gpus

            gpus = get_gpus()
        self.gpus = list(gpus)
        indices = [g.index for g in self.gpus]
        if len(set(indices)) != len(indices):
            raise ZeusConfigError(
                f"gpus: indices {indices} repeat (GPUs of several backends?): the timeline and CSV "
                "are keyed by index, so sample each backend's GPUs with its own PowerMonitor"
            )
        virtual = [g.capabilities.virtual_time for g in self.gpus]
        if any(virtual) and not all(virtual):
            raise ZeusConfigError(
                f"gpus: {self.gpus} mix virtual-time (replay) and wall-time GPUs; sample them with "
                "separate power monitors"
            )
        self.virtual_time = bool(virtual) and all(virtual)
        # virtual time: per GPU, the next instant of the sampling grid (None: not sampling)
        self._next_sample_s: dict[int, float] | None = None
        self.interval_s = interval_s
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self._timeline: dict[int, list[Sample]] = {g.index: [] for g in self.gpus}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._csv_file: TextIO | None = None
        self._csv: Any = None  # a csv writer over _csv_file while a CSV is open
        self._failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> PowerMonitor:
        if self.running:
            raise ZeusConfigError("PowerMonitor already started; call stop() before start()")
        if self.csv_path is not None:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            self._csv_file = self.csv_path.open("w", newline="")
            self._csv = csv.writer(self._csv_file)
            self._csv.writerow(CSV_HEADER)
        self._stop.clear()
        if self.virtual_time:
            self._next_sample_s = {g.index: g.clock_s() for g in self.gpus}
        self.sample_once()  # a first sample right away, so short runs have data
        if not self.virtual_time:
            self._thread = threading.Thread(
                target=self._run, name="zeus-power-monitor", daemon=True
            )
            self._thread.start()
        logger.debug("power monitor started: %d GPUs every %.3f s", len(self.gpus), self.interval_s)
        return self

    def stop(self) -> None:
        """Stop sampling (takes a last sample) and close the CSV. Safe to call twice."""
        if not self.running:
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self._failure is None:
            try:
                self.sample_once()
            except Exception as e:
                self._failure = e
        self._next_sample_s = None
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None
            self._csv = None
        if self._failure is not None:
            raise ZeusDeviceError(f"power sampling failed: {self._failure}") from self._failure

    @property
    def running(self) -> bool:
        return self._thread is not None or self._next_sample_s is not None

    def __enter__(self) -> PowerMonitor:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        next_s = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, next_s - time.monotonic())):
            try:
                self.sample_once()
            except Exception as e:  # reported by stop(); a sampler must not die silently
                logger.error("power sampling failed: %s", e)
                self._failure = e
                return
            next_s += self.interval_s
            if next_s < time.monotonic():  # fell behind (suspended?): skip, do not burst
                next_s = time.monotonic() + self.interval_s

    # -- samples -----------------------------------------------------------------------------------

    def sample_once(self) -> None:
        """Read every GPU's power now and record it (virtual time: every sample due by now)."""
        if self._next_sample_s is not None:
            self._record(self._virtual_samples())
            return
        now_s = time.time()
        self._record([(g.index, now_s, g.power_w()) for g in self.gpus])

    def _record(self, readings: list[tuple[int, float, float]]) -> None:
        if self.exporter is not None:
            for index, _t_s, watts in readings:  # in time order: each GPU's latest stays
                self.exporter.observe_power(index, watts)
        with self._lock:
            for index, t_s, watts in readings:
                self._timeline[index].append((t_s, watts))
            if self._csv is not None:
                self._csv.writerows((f"{t:.6f}", i, f"{w:.3f}") for i, t, w in readings)
                assert self._csv_file is not None
                self._csv_file.flush()

    def _virtual_samples(self) -> list[tuple[int, float, float]]:
        """Samples at every ``interval_s`` of each GPU's virtual clock that has passed."""
        assert self._next_sample_s is not None
        readings = []
        for gpu in self.gpus:
            next_s, now_s = self._next_sample_s[gpu.index], gpu.clock_s()
            if next_s > now_s:
                continue
            changes = gpu.power_timeline_w(next_s, now_s) or [(next_s, gpu.power_w())]
            times = [t for t, _ in changes]
            while next_s <= now_s:
                watts = changes[max(bisect.bisect_right(times, next_s) - 1, 0)][1]
                readings.append((gpu.index, next_s, watts))
                next_s += self.interval_s
            self._next_sample_s[gpu.index] = next_s
        return readings

    def timeline(self) -> dict[int, list[Sample]]:
        """A copy of the samples so far: GPU index -> [(Unix time s, W), ...]."""
        if self._next_sample_s is not None:
            self.sample_once()
        with self._lock:
            return {i: list(samples) for i, samples in self._timeline.items()}

    def energy_j(self, start_s: float, end_s: float) -> dict[int, float]:
        """Energy per GPU between two Unix times, by the trapezoid rule over the timeline."""
        if self._next_sample_s is not None:
            self.sample_once()
        with self._lock:
            return {i: integrate_j(s, start_s, end_s) for i, s in self._timeline.items() if s}

    def discard_before(self, t_s: float) -> None:
        """Forget samples older than ``t_s`` (keeping one before it for interpolation)."""
        with self._lock:
            for samples in self._timeline.values():
                cut = bisect.bisect_left([s[0] for s in samples], t_s) - 1
                if cut > 0:
                    del samples[:cut]
