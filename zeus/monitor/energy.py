"""`ZeusMonitor`: energy and time of named, possibly overlapping measurement windows.

At each window edge the monitor waits for queued GPU work (the framework's sync, then every monitored
GPU's ``synchronize()``) and reads the counters. GPU energy comes from the GPU's energy counter where
it has one; otherwise a background `PowerMonitor` samples power and the window integrates it.

Short windows: NVIDIA's counter is refreshed periodically (tens of ms on some boards), so a window
shorter than that can see a zero delta. Such a window is charged power × time (power read at its end)
instead of a silent 0 J, and its ``method`` says so (``"counter+power"``).

Virtual time: on replay GPUs (``capabilities.virtual_time``) a window's time is what their clocks
advanced by the training steps marked inside it (`ZeusMonitor.step`, or an integration that marks
them), not wall time. A window in which no step was marked lasts 0 s and holds 0 J; its ``method``
says ``no-steps`` and the monitor warns once. CPU (RAPL) energy is always real, over wall time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zeus.device.base import CPU, GPU
from zeus.errors import GPUNotFoundError, ZeusConfigError, ZeusDeviceError
from zeus.monitor.power import PowerMonitor
from zeus.monitor.sync import make_sync

if TYPE_CHECKING:
    from zeus.monitor.exporters import PrometheusExporter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measurement:
    """Time and energy of one window. Energy dicts are keyed by the monitor's GPU/CPU indices."""

    time_s: float
    gpu_energy_j: dict[int, float]
    cpu_energy_j: dict[int, float] | None
    dram_energy_j: dict[int, float] | None
    method: str
    """How GPU energy was obtained: ``counter``, ``counter+power`` (window shorter than the counter's
    refresh), ``power_integration``, a ``mixed(...)`` of those, ``no-steps`` (virtual time that no
    marked step advanced), or ``none``; prefixed ``replay:`` when the numbers come from replay GPUs
    rather than hardware."""

    @property
    def total_energy_j(self) -> float:
        """Sum of GPU energy."""
        return sum(self.gpu_energy_j.values())


@dataclass
class Window:
    """What `ZeusMonitor.window` yields; ``measurement`` is set when the block exits."""

    name: str
    measurement: Measurement | None = None


@dataclass
class _OpenWindow:
    start_mono_s: float
    start_wall_s: float
    gpu_clock_s: dict[int, float]
    gpu_energy_j: dict[int, float]
    cpu_energy_j: dict[int, float]
    dram_energy_j: dict[int, float]
    sampled: dict[int, float] = field(default_factory=dict)


def _select(
    kind: str, items: Sequence[GPU] | Sequence[CPU], indices: list[int] | None
) -> list[int]:
    chosen = list(range(len(items))) if indices is None else list(indices)
    for i in chosen:
        if not 0 <= i < len(items):
            allowed = f"0..{len(items) - 1}" if items else f"none (no {kind} available)"
            if not items and kind == "GPU":
                allowed += "; set ZEUS_GPU=replay:<profile> to use a replay GPU"
            error = GPUNotFoundError if kind == "GPU" else ZeusConfigError
            raise error(f"{kind} index {i} does not exist; allowed indices: {allowed}")
    if len(set(chosen)) != len(chosen):
        raise ZeusConfigError(f"{kind} indices must be distinct, got {chosen}")
    return chosen


class ZeusMonitor:
    """Measure the time and GPU/CPU/DRAM energy of named windows.

    ``gpus=`` / ``cpus=`` pass devices explicitly (``gpu_indices``/``cpu_indices`` then index into
    those lists); by default the GPUs come from `zeus.device.get_gpus` and the CPUs from RAPL (none,
    with a warning, when RAPL cannot be read and ``cpu_indices`` was not asked for).

    ``exporter=`` (a `zeus.monitor.exporters.PrometheusExporter`) exports every finished window as
    Prometheus metrics; by default the process's exporter from ``ZEUS_METRICS`` when it is set.
    """

    def __init__(
        self,
        gpu_indices: list[int] | None = None,
        cpu_indices: list[int] | None = None,
        sync_execution_with: str | Callable[[], object] = "torch",
        *,
        gpus: Sequence[GPU] | None = None,
        cpus: Sequence[CPU] | None = None,
        power_interval_s: float = 0.1,
        exporter: PrometheusExporter | None = None,
    ) -> None:
        if exporter is None:
            from zeus.monitor.exporters import exporter_from_env

            exporter = exporter_from_env()
        self.exporter = exporter
        if gpus is None:
            from zeus.device import get_gpus

            gpus = get_gpus()
        self.gpu_indices = _select("GPU", gpus, gpu_indices)
        self.gpus: list[GPU] = [gpus[i] for i in self.gpu_indices]
        if cpus is None:
            cpus = self._default_cpus(explicit=cpu_indices is not None)
        self.cpu_indices = _select("CPU", cpus, cpu_indices)
        self.cpus: list[CPU] = [cpus[i] for i in self.cpu_indices]
        self._framework_sync = make_sync(sync_execution_with, [g.index for g in self.gpus])
        capabilities = [g.capabilities for g in self.gpus]
        self._counter_gpu = [c.energy_counter for c in capabilities]
        self._virtual = bool(capabilities) and all(c.virtual_time for c in capabilities)
        if not self._virtual and any(c.virtual_time for c in capabilities):
            raise ZeusConfigError(
                f"gpus: {self.gpus} mix virtual-time (replay) and wall-time GPUs; one monitor "
                "measures one kind of time: monitor them separately"
            )
        self._simulated = any(c.simulated for c in capabilities)
        self._warned_no_steps = False
        self._power_interval_s = power_interval_s
        self._power_monitor: PowerMonitor | None = None
        self._windows: dict[str, _OpenWindow] = {}

    @staticmethod
    def _default_cpus(explicit: bool) -> list[CPU]:
        from zeus.device.rapl import rapl_cpus

        try:
            return list(rapl_cpus())
        except ZeusDeviceError as e:
            if explicit:
                raise
            logger.warning("not measuring CPU energy: %s", e)
            return []

    # -- windows -----------------------------------------------------------------------------------

    def begin_window(self, name: str, sync_execution: bool = True) -> None:
        """Open window ``name``. ``ZeusConfigError`` if a window of that name is already open."""
        if name in self._windows:
            raise ZeusConfigError(
                f"window {name!r} is already open; end it first (open windows: {sorted(self._windows)})"
            )
        if sync_execution:
            self.sync()
        self._ensure_power_monitor()
        start_wall_s = time.time()
        start_mono_s, clocks, (gpu_j, cpu_j, dram_j) = self._read_counters()
        self._windows[name] = _OpenWindow(
            start_mono_s=start_mono_s,
            start_wall_s=start_wall_s,
            gpu_clock_s=clocks,
            gpu_energy_j=gpu_j,
            cpu_energy_j=cpu_j,
            dram_energy_j=dram_j,
        )

    def end_window(self, name: str, sync_execution: bool = True) -> Measurement:
        """Close window ``name`` and return its `Measurement`. ``ZeusConfigError`` if it is not open."""
        window = self._windows.pop(name, None)
        if window is None:
            open_names = ", ".join(sorted(self._windows)) or "none"
            raise ZeusConfigError(f"window {name!r} is not open (open windows: {open_names})")
        if sync_execution:
            self.sync()
        end_wall_s = time.time()
        end_mono_s, clocks, (gpu_j, cpu_j, dram_j) = self._read_counters()
        elapsed_s = end_mono_s - window.start_mono_s
        if self._virtual:
            elapsed_s = max(clocks[i] - window.gpu_clock_s[i] for i in clocks)
        gpu_energy, methods = self._gpu_energy(window, gpu_j, elapsed_s, end_wall_s)
        if self._virtual and elapsed_s == 0.0:
            methods = {"no-steps"}
            self._warn_no_steps(name)
        self._prune_samples(end_wall_s)
        measurement = Measurement(
            time_s=elapsed_s,
            gpu_energy_j=gpu_energy,
            cpu_energy_j=_deltas(window.cpu_energy_j, cpu_j) if self.cpus else None,
            dram_energy_j=_deltas(window.dram_energy_j, dram_j) if window.dram_energy_j else None,
            method=self._method_label(methods),
        )
        if self.exporter is not None:
            self.exporter.observe_window(name, measurement)
        return measurement

    @contextmanager
    def window(self, name: str, sync_execution: bool = True) -> Iterator[Window]:
        """``with monitor.window("eval") as w: ...`` then ``w.measurement``. Ends even on errors."""
        handle = Window(name)
        self.begin_window(name, sync_execution)
        try:
            yield handle
        finally:
            handle.measurement = self.end_window(name, sync_execution)

    @property
    def open_windows(self) -> list[str]:
        return list(self._windows)

    def step(self, batch_size: int | None = None, *, forward_only: bool = False) -> None:
        """Mark one training step (``forward_only``: an evaluation batch) of ``batch_size`` samples,
        split evenly over the monitored GPUs. Advances replay GPUs' virtual clocks; a no-op on
        hardware. `GlobalPowerLimitOptimizer`, `ZeusDataLoader` and the framework callbacks call it
        for you: call it yourself only in a loop that uses none of them."""
        per_gpu = None
        if batch_size is not None and self.gpus:
            per_gpu = max(1, round(batch_size / len(self.gpus)))
        for gpu in self.gpus:
            gpu.step(per_gpu, forward_only=forward_only)

    def sync(self) -> None:
        """Wait for queued work: the framework's sync, then each monitored GPU's."""
        self._framework_sync()
        for gpu in self.gpus:
            gpu.synchronize()

    def close(self) -> None:
        """Stop the background power sampler, if one runs."""
        if self._power_monitor is not None:
            self._power_monitor.stop()
            self._power_monitor = None

    # -- internals ---------------------------------------------------------------------------------

    def _ensure_power_monitor(self) -> None:
        if self._power_monitor is None and not all(self._counter_gpu):
            sampled = [g for g, c in zip(self.gpus, self._counter_gpu, strict=True) if not c]
            self._power_monitor = PowerMonitor(sampled, interval_s=self._power_interval_s).start()
        elif self._power_monitor is not None:
            self._power_monitor.sample_once()  # an edge sample, so short windows are covered

    def _read_counters(
        self,
    ) -> tuple[
        float, dict[int, float], tuple[dict[int, float], dict[int, float], dict[int, float]]
    ]:
        """The monotonic time of the window edge, the GPUs' virtual clocks (virtual time only) and
        the counter readings."""
        gpu_j: dict[int, float] = {}
        clocks: dict[int, float] = {}
        for i, gpu, has_counter in zip(self.gpu_indices, self.gpus, self._counter_gpu, strict=True):
            if self._virtual:
                clocks[i] = gpu.clock_s()
            if has_counter:
                gpu_j[i] = gpu.energy_j()
        edge_s = time.monotonic()
        cpu_j: dict[int, float] = {}
        dram_j: dict[int, float] = {}
        for i, cpu in zip(self.cpu_indices, self.cpus, strict=True):
            reading = cpu.energy()
            cpu_j[i] = reading.package_j
            if reading.dram_j is not None:
                dram_j[i] = reading.dram_j
        return edge_s, clocks, (gpu_j, cpu_j, dram_j)

    def _gpu_energy(
        self, window: _OpenWindow, gpu_j: dict[int, float], elapsed_s: float, end_wall_s: float
    ) -> tuple[dict[int, float], set[str]]:
        energy: dict[int, float] = {}
        methods: set[str] = set()
        sampled: dict[int, float] = {}
        if self._power_monitor is not None:
            self._power_monitor.sample_once()
            sampled = self._power_monitor.energy_j(window.start_wall_s, end_wall_s)
        for i, gpu, has_counter in zip(self.gpu_indices, self.gpus, self._counter_gpu, strict=True):
            if not has_counter:
                energy[i] = sampled.get(gpu.index, 0.0)
                methods.add("power_integration")
                continue
            delta_j = gpu_j[i] - window.gpu_energy_j[i]
            if delta_j <= 0.0 and elapsed_s > 0.0:
                delta_j = gpu.power_w() * elapsed_s  # window shorter than the counter's refresh
                methods.add("counter+power")
            else:
                methods.add("counter")
            energy[i] = delta_j
        return energy, methods

    def _method_label(self, methods: set[str]) -> str:
        if not methods:
            label = "none"
        elif len(methods) == 1:
            label = next(iter(methods))
        else:
            label = f"mixed({','.join(sorted(methods))})"
        return f"replay:{label}" if self._simulated else label

    def _warn_no_steps(self, name: str) -> None:
        if self._warned_no_steps:
            return
        self._warned_no_steps = True
        logger.warning(
            "window %r on replay GPU(s): no training step was marked inside it, so replay time did "
            "not advance (0 s, 0 J). Replay GPUs count only marked steps: use "
            "GlobalPowerLimitOptimizer, ZeusDataLoader or a framework callback, or call "
            "monitor.step() after each step (docs/replay-gpu.md)",
            name,
        )

    def _prune_samples(self, now_wall_s: float) -> None:
        if self._power_monitor is None:
            return
        oldest = min((w.start_wall_s for w in self._windows.values()), default=now_wall_s)
        self._power_monitor.discard_before(oldest)


def _deltas(start: dict[int, float], end: dict[int, float]) -> dict[int, float]:
    return {i: end[i] - start[i] for i in start}
