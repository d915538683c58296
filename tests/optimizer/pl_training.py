"""Helpers for power-limit optimizer tests: a tiny training loop and a read-only GPU."""

from __future__ import annotations

from zeus.device.base import GPUCapabilities, Thermals
from zeus.device.replay import ReplayGPU
from zeus.errors import ZeusPermissionError
from zeus.monitor import ZeusMonitor
from zeus.optimizer.power_limit import GlobalPowerLimitOptimizer


def replay_monitor(*gpus: ReplayGPU | ReadOnlyGPU) -> ZeusMonitor:
    return ZeusMonitor(gpus=list(gpus), cpus=[], sync_execution_with=lambda: None)


def train(
    plo: GlobalPowerLimitOptimizer, epochs: int, steps_per_epoch: int, *, end: bool = True
) -> None:
    """A training loop that calls every hook the way the docs tell users to. The replay GPU times
    the steps (``on_step_end`` marks them), so the loop body needs no work of its own."""
    plo.on_train_begin()
    for _ in range(epochs):
        plo.on_epoch_begin()
        for _ in range(steps_per_epoch):
            plo.on_step_begin()
            plo.on_step_end()
        plo.on_epoch_end()
    if end:
        plo.on_train_end()


class ReadOnlyGPU:
    """A replay GPU this process may not change: like NVML without root.

    ``honest=True`` reports it in its capabilities; ``honest=False`` claims permission and only
    fails on the set call (as some drivers do). ``allowed_sets`` lets that many set calls through
    first: permission revoked mid-training.
    """

    def __init__(self, inner: ReplayGPU, honest: bool = True, allowed_sets: int = 0) -> None:
        self.inner = inner
        self.honest = honest
        self.allowed_sets = allowed_sets
        self.set_attempts = 0

    @property
    def index(self) -> int:
        return self.inner.index

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def uuid(self) -> str:
        return self.inner.uuid

    @property
    def capabilities(self) -> GPUCapabilities:
        return GPUCapabilities(
            energy_counter=True, set_power_limit=not self.honest, virtual_time=True, simulated=True
        )

    @property
    def board_id(self) -> str:
        return self.inner.board_id

    @property
    def set_power_limit_denied_reason(self) -> str | None:
        return f"GPU {self.index}: changing the power limit needs root" if self.honest else None

    def thermals(self) -> Thermals:
        return self.inner.thermals()

    @property
    def min_power_limit_w(self) -> int:
        return self.inner.min_power_limit_w

    @property
    def max_power_limit_w(self) -> int:
        return self.inner.max_power_limit_w

    @property
    def default_power_limit_w(self) -> int:
        return self.inner.default_power_limit_w

    def get_power_limit_w(self) -> int:
        return self.inner.get_power_limit_w()

    def set_power_limit_w(self, watts: int) -> None:
        self.set_attempts += 1
        if self.set_attempts <= self.allowed_sets:
            self.inner.set_power_limit_w(watts)
            return
        raise ZeusPermissionError(f"GPU {self.index}: changing the power limit needs root")

    def reset_power_limit(self) -> None:
        self.set_power_limit_w(self.default_power_limit_w)

    def power_w(self) -> float:
        return self.inner.power_w()

    def energy_j(self) -> float:
        return self.inner.energy_j()

    def synchronize(self) -> None:
        self.inner.synchronize()

    def clock_s(self) -> float:
        return self.inner.clock_s()

    def step(self, batch_size: int | None = None, *, forward_only: bool = False) -> None:
        self.inner.step(batch_size, forward_only=forward_only)

    def power_timeline_w(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        return self.inner.power_timeline_w(start_s, end_s)


class RecordingMonitor(ZeusMonitor):
    """A monitor that records each window it opens with the first GPU's limit at that moment."""

    def __init__(self, *gpus: ReplayGPU | ReadOnlyGPU) -> None:
        super().__init__(gpus=list(gpus), cpus=[], sync_execution_with=lambda: None)
        self.opened: list[tuple[str, int]] = []

    def begin_window(self, name: str, sync_execution: bool = True) -> None:
        self.opened.append((name, self.gpus[0].get_power_limit_w()))
        super().begin_window(name, sync_execution)
