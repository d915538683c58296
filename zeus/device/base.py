"""The device protocols every backend implements, and the dataclasses they return.

Units are in names: watts (`_w`), joules (`_j`), seconds (`_s`). Milliwatts and millijoules exist only
inside backends. Power limits are whole watts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class GPUCapabilities:
    """What a GPU backend can do on this device."""

    energy_counter: bool
    """Has a cumulative energy counter (NVIDIA Volta and newer; the replay GPU)."""
    set_power_limit: bool
    """This process may change the power limit (False: observe-only)."""


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
    def capabilities(self) -> GPUCapabilities: ...

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

    def synchronize(self) -> None:
        """Wait until queued work is done. No-op for real GPUs (the framework syncs); the replay GPU
        waits here as long as a GPU throttled to the current limit would."""
        ...


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
