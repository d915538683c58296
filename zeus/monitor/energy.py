"""`ZeusMonitor`: energy and time of named, possibly overlapping measurement windows.

At each window edge the monitor waits for queued GPU work (the framework's sync, then every monitored
GPU's ``synchronize()``) and reads the counters. GPU energy comes from the GPU's energy counter where
it has one; otherwise a background `PowerMonitor` samples power and the window integrates it.

Short windows: NVIDIA's counter is refreshed periodically (tens of ms on some boards), so a window
shorter than that can see a zero delta. Such a window is charged power × time (power read at its end)
instead of a silent 0 J, and its ``method`` says so (``"counter+power"``). A counter that does not
move for ``counter_stall_s`` or longer while the GPU draws power has stalled (reported on AMD MI100
and MI250 drivers): that window is charged power × time (``"stalled+power"``), the monitor warns
once and integrates sampled power for that GPU from then on (``"power_integration"``).

Shared boards: a MIG instance (or an AMD compute partition) reports its whole board's figures. The
monitor warns that such energy includes the board's other tenants, and refuses two devices of one
board, whose sum would count the board twice.

CPUs: a RAPL zone that disappears mid-run (``ZeusDeviceError`` on read) is dropped with one warning;
windows then report the CPUs still measured.

Virtual time: on replay GPUs (``capabilities.virtual_time``) a window's time is what their clocks
advanced by the training steps marked inside it (`ZeusMonitor.step`, or an integration that marks
them), not wall time. A window in which no step was marked lasts 0 s and holds 0 J; its ``method``
says ``no-steps`` and the monitor warns once. CPU (RAPL) energy is always real, over wall time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zeus.device.base import CPU, GPU
from zeus.errors import GPUNotFoundError, ZeusConfigError, ZeusDeviceError, check_range
from zeus.monitor.power import PowerMonitor
from zeus.monitor.sync import make_sync
from zeus.monitor.window_log import WindowLog

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
    refresh), ``stalled+power`` (the counter stalled), ``power_integration``, a ``mixed(...)`` of
    those, ``no-steps`` (virtual time that no marked step advanced), or ``none``; prefixed
    ``replay:`` when the numbers come from replay GPUs rather than hardware."""

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
    those lists; GPUs of several vendors may be mixed); by default the GPUs come from
    `zeus.device.get_gpus` and the CPUs from RAPL (none, with a warning, when RAPL cannot be read and
    ``cpu_indices`` was not asked for). ``counter_stall_s``: a counter that does not move for this
    long while the GPU draws power is stalled. ``window_log``: a ``.csv`` or ``.jsonl`` file that
    gets one record per finished window (`zeus.monitor.window_log`).

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
        counter_stall_s: float = 1.0,
        window_log: str | os.PathLike[str] | None = None,
        exporter: PrometheusExporter | None = None,
    ) -> None:
        check_range("counter_stall_s", counter_stall_s, gt=0)
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
        _check_boards(self.gpu_indices, self.gpus)
        self._warned_no_steps = False
        self._power_interval_s = power_interval_s
        self._stall_s = counter_stall_s
        self._samplers: dict[int, PowerMonitor] = {}  # GPU position -> its power sampler
        self._windows: dict[str, _OpenWindow] = {}
        self._log = (
            WindowLog(window_log, self.gpu_indices, self.cpu_indices) if window_log else None
        )

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
        self._ensure_samplers()
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
        cpu_energy = _deltas(window.cpu_energy_j, cpu_j)
        dram_energy = _deltas(window.dram_energy_j, dram_j)
        measurement = Measurement(
            time_s=elapsed_s,
            gpu_energy_j=gpu_energy,
            cpu_energy_j=cpu_energy if self.cpus or cpu_energy else None,
            dram_energy_j=dram_energy or None,
            method=self._method_label(methods),
        )
        if self._log is not None:
            self._log.write(name, window.start_wall_s, end_wall_s, measurement)
        if self.exporter is not None:
            self.exporter.observe_window(name, measurement)
        return measurement

    def cancel_window(self, name: str) -> None:
        """Close window ``name`` without a measurement (nothing is logged or exported): e.g. a pass
        to leave out. ``begin_window(name)`` may then start it afresh. ``ZeusConfigError`` if not
        open."""
        if self._windows.pop(name, None) is None:
            open_names = ", ".join(sorted(self._windows)) or "none"
            raise ZeusConfigError(f"window {name!r} is not open (open windows: {open_names})")
        self._prune_samples(time.time())

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
        """Stop the background power samplers, if any run."""
        samplers, self._samplers = self._samplers, {}
        for sampler in samplers.values():
            sampler.stop()

    # -- internals ---------------------------------------------------------------------------------

    def _ensure_samplers(self) -> None:
        """A background sampler per GPU measured by power; an edge sample on each running one, so
        short windows are covered."""
        for k, (gpu, has_counter) in enumerate(zip(self.gpus, self._counter_gpu, strict=True)):
            if has_counter:
                continue
            sampler = self._samplers.get(k)
            if sampler is None:
                interval_s = self._power_interval_s
                self._samplers[k] = PowerMonitor([gpu], interval_s=interval_s).start()
            else:
                sampler.sample_once()

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
        gone: list[tuple[int, ZeusDeviceError]] = []
        for i, cpu in zip(self.cpu_indices, self.cpus, strict=True):
            try:
                reading = cpu.energy()
            except ZeusDeviceError as failure:
                gone.append((i, failure))
                continue
            cpu_j[i] = reading.package_j
            if reading.dram_j is not None:
                dram_j[i] = reading.dram_j
        for i, error in gone:
            self._drop_cpu(i, error)
        return edge_s, clocks, (gpu_j, cpu_j, dram_j)

    def _drop_cpu(self, index: int, error: ZeusDeviceError) -> None:
        """A CPU that cannot be read any more (its RAPL zone disappeared): measure the others."""
        k = self.cpu_indices.index(index)
        del self.cpu_indices[k], self.cpus[k]
        logger.warning("CPU %d: no longer measuring its energy: %s", index, error)

    def _gpu_energy(
        self, window: _OpenWindow, gpu_j: dict[int, float], elapsed_s: float, end_wall_s: float
    ) -> tuple[dict[int, float], set[str]]:
        energy: dict[int, float] = {}
        methods: set[str] = set()
        for k, (i, gpu) in enumerate(zip(self.gpu_indices, self.gpus, strict=True)):
            sampler = self._samplers.get(k)
            if not self._counter_gpu[k] or i not in window.gpu_energy_j:
                joules = 0.0
                if sampler is not None:
                    sampler.sample_once()
                    joules = sampler.energy_j(window.start_wall_s, end_wall_s).get(gpu.index, 0.0)
                energy[i] = joules
                methods.add("power_integration")
                continue
            delta_j = gpu_j[i] - window.gpu_energy_j[i]
            if delta_j <= 0.0 and elapsed_s > 0.0:
                watts = gpu.power_w()
                delta_j = watts * elapsed_s  # no counter movement to go by: power x time
                if watts > 0.0 and elapsed_s >= self._stall_s and not self._virtual:
                    self._counter_stalled(k, elapsed_s)
                    methods.add("stalled+power")
                else:
                    methods.add("counter+power")  # window shorter than the counter's refresh
            else:
                methods.add("counter")
            energy[i] = delta_j
        return energy, methods

    def _counter_stalled(self, k: int, elapsed_s: float) -> None:
        """GPU ``k``'s counter did not move over a whole window while it drew power: from now on
        integrate its sampled power instead."""
        gpu = self.gpus[k]
        self._counter_gpu[k] = False
        self._ensure_samplers()
        logger.warning(
            "GPU %d (%s): its energy counter did not move in %.1f s while it drew power; "
            "measuring its energy by integrating sampled power from now on (method "
            "'stalled+power' for this window, 'power_integration' after)",
            self.gpu_indices[k],
            gpu.name,
            elapsed_s,
        )

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
        oldest = min((w.start_wall_s for w in self._windows.values()), default=now_wall_s)
        for sampler in self._samplers.values():
            sampler.discard_before(oldest)


def _deltas(start: dict[int, float], end: dict[int, float]) -> dict[int, float]:
    """Per device, end minus start, for the devices read at both edges."""
    return {i: end[i] - start[i] for i in start if i in end}


def _check_boards(indices: list[int], gpus: list[GPU]) -> None:
    """Refuse two devices of one board (their sum counts it twice); warn about shared boards."""
    boards: dict[str, list[int]] = {}
    for i, gpu in zip(indices, gpus, strict=True):
        boards.setdefault(gpu.board_id, []).append(i)
    for board, on_board in boards.items():
        if len(on_board) > 1:
            raise ZeusConfigError(
                f"gpus {on_board} are on one board ({board}): each reports the whole board's "
                f"power and energy, so their sum would count the board {len(on_board)} times; "
                "monitor one of them (its figures are the board's)"
            )
    shared = [(i, g) for i, g in zip(indices, gpus, strict=True) if g.capabilities.shared_board]
    for i, gpu in shared:
        logger.warning(
            "GPU %d (%s) shares board %s with other MIG instances or partitions: its power and "
            "energy are the whole board's, including other tenants' work",
            i,
            gpu.name,
            gpu.board_id,
        )
