"""The device protocols every backend implements, and the dataclasses they return.

Units are in names: watts (`_w`), joules (`_j`), seconds (`_s`). Milliwatts and millijoules exist only
inside backends. Power limits are whole watts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from zeus.errors import NotSupportedError, ZeusConfigError


@dataclass(frozen=True)
class GPUCapabilities:
    """What a GPU backend can do on this device."""

    energy_counter: bool
    """Has a cumulative energy counter (NVIDIA Volta and newer; the replay GPU)."""
    set_power_limit: bool
    """This process may change the power limit (False: observe-only)."""
    virtual_time: bool = False
    """The device keeps its own clock, advanced by the training steps marked on it (`GPU.step`):
    window time and energy come from that clock, not from wall time (the replay GPU)."""
    simulated: bool = False
    """Figures are replayed from measured data, not measured on this machine's hardware."""
    shared_board: bool = False
    """Power, energy and the power limit are those of a whole board that other devices share (an
    NVIDIA MIG instance, a GPU in MIG mode, an AMD compute partition): they include other tenants'
    work, and a limit set here would limit them too. `GPU.board_id` names the board."""
    thermals: bool = False
    """`GPU.thermals` reads the temperature and why clocks are held back (NVML, amdsmi)."""


ThrottleReason = Literal[
    "power_cap", "thermal", "hw_slowdown", "power_brake", "clocks_setting", "idle", "other"
]
"""Why a GPU runs below its top clocks: its power limit (``power_cap``), temperature (``thermal``), a
hardware slowdown (``hw_slowdown``: thermal, power supply or power brake), an external power brake
(``power_brake``), clocks set by someone (``clocks_setting``), no work (``idle``), or ``other``."""

NOT_POWER_LIMIT: frozenset[ThrottleReason] = frozenset(
    {"thermal", "hw_slowdown", "power_brake", "clocks_setting"}
)
"""Throttling a power limit does not explain: it distorts a power-limit measurement."""


@dataclass(frozen=True)
class Thermals:
    """A GPU's temperature and throttle reasons at one instant."""

    temperature_c: float | None
    """Degrees Celsius of the sensor Zeus reads (NVIDIA: the die; AMD: hotspot, else edge); None
    when unread."""
    throttle_reasons: frozenset[ThrottleReason] | None
    """Reasons clocks are held back right now (empty: none); None when the device cannot tell."""


@runtime_checkable
class GPU(Protocol):
    """One GPU as the training process sees it (index after ``CUDA_VISIBLE_DEVICES``)."""

    @property
    def index(self) -> int: ...

    @property
    def name(self) -> str:
        """Model name, e.g. ``"NVIDIA A40"``; profiles are saved per model."""
        ...

    @property
    def uuid(self) -> str:
        """Stable identifier of the device on its node, the same in every process (NVML's
        ``GPU-...`` UUID; ``replay-<profile>-<index>`` for replay GPUs). The node agent leases by it."""
        ...

    @property
    def capabilities(self) -> GPUCapabilities: ...

    @property
    def board_id(self) -> str:
        """The physical board whose power, energy and limit this device reports (a MIG instance:
        its parent GPU's UUID). Two devices with one ``board_id`` share those figures."""
        ...

    @property
    def set_power_limit_denied_reason(self) -> str | None:
        """Why this process may not change the limit, in words; None when it may
        (``capabilities.set_power_limit``)."""
        ...

    @property
    def min_power_limit_w(self) -> int: ...

    @property
    def max_power_limit_w(self) -> int: ...

    @property
    def default_power_limit_w(self) -> int: ...

    def get_power_limit_w(self) -> int: ...

    def set_power_limit_w(self, watts: int) -> None:
        """Set the limit. ``ZeusConfigError`` outside [min, max]; ``ZeusPermissionError`` if denied."""
        ...

    def reset_power_limit(self) -> None:
        """Back to ``default_power_limit_w``."""
        ...

    def power_w(self) -> float:
        """Instantaneous (or driver-averaged) board power draw."""
        ...

    def energy_j(self) -> float:
        """Cumulative energy counter; ``NotSupportedError`` without ``capabilities.energy_counter``."""
        ...

    def thermals(self) -> Thermals:
        """Temperature and throttle reasons now; ``NotSupportedError`` without
        ``capabilities.thermals``."""
        ...

    def synchronize(self) -> None:
        """Wait until queued work is done. No-op for real GPUs (the framework syncs) and virtual-time
        devices; a wall-clock replay GPU waits here as long as a throttled GPU would."""
        ...

    def clock_s(self) -> float:
        """The device's time in seconds: ``time.monotonic()`` for hardware, the virtual clock for a
        ``virtual_time`` device. Window time is the difference of two readings."""
        ...

    def step(self, batch_size: int | None = None, *, forward_only: bool = False) -> None:
        """One training step of ``batch_size`` samples ran on this GPU (``forward_only``: an
        evaluation batch). Hardware ignores it (the work ran for real); a ``virtual_time`` device
        advances its clock and energy counter by what the step takes at the current power limit."""
        ...

    def power_timeline_w(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        """``(clock_s, W)`` where power changed in [start_s, end_s], first the power at ``start_s``;
        ``virtual_time`` devices only (``NotSupportedError`` otherwise: sample ``power_w()``)."""
        ...


def check_power_limit(watts: float, lo: int, hi: int, gpu: str) -> None:
    """`ZeusConfigError` naming ``gpu`` and the allowed range unless ``lo <= watts <= hi``."""
    if not lo <= watts <= hi:
        raise ZeusConfigError(
            f"power limit {watts} W is outside the range of {gpu}: allowed {lo}..{hi} W"
        )


class HardwareClock:
    """The clock part of `GPU` for devices that run work for real: wall time, steps ignored."""

    def clock_s(self) -> float:
        return time.monotonic()

    def step(self, batch_size: int | None = None, *, forward_only: bool = False) -> None:
        """The step ran on the hardware: nothing to account for."""

    def power_timeline_w(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        raise NotSupportedError(f"{self!r} runs on wall time: sample power_w() (PowerMonitor)")


@dataclass(frozen=True)
class CPUEnergy:
    """Cumulative energy of one CPU socket; ``dram_j`` is None where DRAM is not metered."""

    package_j: float
    dram_j: float | None


@runtime_checkable
class CPU(Protocol):
    """One CPU package (socket)."""

    @property
    def index(self) -> int: ...

    @property
    def has_dram(self) -> bool: ...

    def energy(self) -> CPUEnergy:
        """Cumulative energy since an arbitrary origin, wraparound already unfolded."""
        ...
