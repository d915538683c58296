"""Hardware energy counters that wrap, unfolded into totals that never undercount.

A `WrappingCounter` turns raw readings of a counter that wraps back to 0 (RAPL's microjoule counters,
AMD's 32-bit energy accumulators) into a monotonic total in joules. Unfolding works only when
readings are closer together than one wrap period, so every counter in use registers with the one
`CounterPoller` of the process: a daemon thread that reads each counter a few times per wrap period
(RAPL packages wrap every few minutes on a busy server, some AMD CPUs' zones every few seconds). The
thread starts with the first registration, i.e. only when energy is measured, and stops when no
counter is left. Time is never read by the counters themselves, so tests drive them explicitly.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

from zeus.errors import ZeusDeviceError

logger = logging.getLogger(__name__)

POLLS_PER_WRAP = 4
"""Readings per shortest wrap period: one missed poll (a busy machine) still leaves three."""
MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 60.0


class WrappingCounter:
    """A counter of ``wrap_raw`` raw units (it wraps to 0 there) worth ``joules_per_raw`` each.

    ``read_raw`` reads the hardware; ``max_power_w`` is the most the metered part can draw, which
    bounds how fast the counter can wrap. A reading below the previous one is a wrap. Thread-safe.
    """

    def __init__(
        self,
        name: str,
        read_raw: Callable[[], int],
        *,
        wrap_raw: int,
        joules_per_raw: float,
        max_power_w: float,
    ) -> None:
        if wrap_raw <= 0 or joules_per_raw <= 0 or max_power_w <= 0:
            raise ZeusDeviceError(
                f"{name}: wrap_raw, joules_per_raw and max_power_w must be > 0, got "
                f"{wrap_raw}, {joules_per_raw}, {max_power_w}"
            )
        self.name = name
        self._read_raw = read_raw
        self.wrap_raw = wrap_raw
        self.joules_per_raw = joules_per_raw
        self.max_power_w = max_power_w
        self._lock = threading.Lock()
        self._last_raw = read_raw()
        self._wraps = 0
        self.failure: ZeusDeviceError | None = None
        """Set when a background read failed (the counter is then no longer polled)."""

    @property
    def wrap_period_s(self) -> float:
        """The shortest time in which the counter can wrap (at ``max_power_w``)."""
        return self.wrap_raw * self.joules_per_raw / self.max_power_w

    @property
    def wraps(self) -> int:
        return self._wraps

    def read_j(self) -> float:
        """Energy since an arbitrary origin, wraps unfolded. Raises what ``read_raw`` raises."""
        with self._lock:
            raw = self._read_raw()
            if raw < self._last_raw:
                self._wraps += 1
            self._last_raw = raw
            return (self._wraps * self.wrap_raw + raw) * self.joules_per_raw


class CounterPoller:
    """Reads registered counters often enough that no wrap goes unseen. One per process:
    `counter_poller`. ``poll()`` reads them all once; the thread calls it every ``interval_s``.
    ``background=False`` runs no thread: the caller polls (tests drive time this way)."""

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._counters: weakref.WeakSet[WrappingCounter] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0
        """Completed polls (for tests and benchmarks)."""

    def register(self, counter: WrappingCounter) -> None:
        """Poll ``counter`` from now on, until it is garbage-collected or a read fails. Owners call
        it at every read: cheap when nothing changed, and it restarts the thread after a fork."""
        with self._lock:
            new = counter not in self._counters
            if new:
                self._counters.add(counter)
            if not self.background:
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="zeus-counter-poller", daemon=True
                )
                self._thread.start()
                logger.debug("counter poller started (every %.3g s)", self._interval_locked())
            elif new:
                self._wake.set()  # a shorter wrap period may need a shorter interval now

    @property
    def counters(self) -> list[WrappingCounter]:
        with self._lock:
            return list(self._counters)

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def interval_s(self) -> float:
        with self._lock:
            return self._interval_locked()

    def _interval_locked(self) -> float:
        periods = [c.wrap_period_s for c in self._counters]
        if not periods:
            return MAX_INTERVAL_S
        return min(max(min(periods) / POLLS_PER_WRAP, MIN_INTERVAL_S), MAX_INTERVAL_S)

    def poll(self) -> None:
        """Read every registered counter once. A counter whose read fails is dropped with one
        warning (its `failure` says why); the next read by its owner raises the same error."""
        for counter in self.counters:
            try:
                counter.read_j()
            except Exception as error:  # the thread must not die: drop the counter, say why
                failure = (
                    error if isinstance(error, ZeusDeviceError) else ZeusDeviceError(str(error))
                )
                counter.failure = failure
                with self._lock:
                    self._counters.discard(counter)
                logger.warning("%s: stopped polling: %s", counter.name, failure)
        self.polls += 1

    def _run(self) -> None:
        while True:
            self._wake.clear()
            with self._lock:
                if not self._counters:
                    self._thread = None
                    return
                interval_s = self._interval_locked()
            if self._wake.wait(interval_s):
                continue  # a counter registered: recompute the interval
            self.poll()

    def _after_fork(self) -> None:
        """In a forked child no thread runs and a lock may be held by the parent's poller: start
        afresh (the next read of a counter restarts the thread)."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        for counter in list(self._counters):
            counter._lock = threading.Lock()


_poller = CounterPoller()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _poller._after_fork())


def counter_poller() -> CounterPoller:
    """The process's poller."""
    return _poller
