"""NVIDIA GPUs through NVML (nvidia-ml-py). The only module of Zeus that imports ``pynvml``.

``pynvml`` is imported lazily and can be passed in (``pynvml=``): tests hand in a fake module object.
Indices are those the process sees after ``CUDA_VISIBLE_DEVICES``, whose entries may be NVML indices,
GPU UUIDs (``GPU-...``, prefixes allowed, like CUDA) or MIG device UUIDs (``MIG-...``). As in CUDA, the
list stops at the first entry that matches no device, except a ``MIG-`` UUID that names no MIG
device: that is an error listing the MIG devices that exist.

MIG: NVML meters and limits whole boards, so a MIG instance reports its parent board's power, energy,
temperature and limit, as does a board in MIG mode. Such devices say so (``shared_board``, and
``board_id`` is the board's UUID); NVIDIA documents no way to split a board's power among its
instances, so Zeus does not split it, and it refuses to change a shared board's limit, which would
limit every tenant of the board.

Units: NVML speaks mW and mJ; everything leaving this module is W and J.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from zeus.device.base import (
    GPUCapabilities,
    HardwareClock,
    Thermals,
    ThrottleReason,
    check_power_limit,
)
from zeus.errors import (
    GPUNotFoundError,
    NotSupportedError,
    ZeusConfigError,
    ZeusDeviceError,
    ZeusPermissionError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

_PERMISSION_HINT = (
    "changing GPU power limits needs root or CAP_SYS_ADMIN (e.g. `docker run --cap-add SYS_ADMIN`); "
    "Zeus will only observe and recommend"
)


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


def _nvml_call(pynvml: Any, what: str, fn: Callable[..., T], *args: Any) -> T:
    """Call NVML and map its many errors to Zeus's few."""
    try:
        return fn(*args)
    except pynvml.NVMLError as e:
        code = getattr(e, "value", None)
        if code == pynvml.NVML_ERROR_NO_PERMISSION:
            raise ZeusPermissionError(
                f"{what}: permission denied by NVML; {_PERMISSION_HINT}"
            ) from e
        if code == pynvml.NVML_ERROR_NOT_SUPPORTED:
            raise NotSupportedError(f"{what}: not supported by this GPU or driver") from e
        if code == pynvml.NVML_ERROR_NOT_FOUND:
            raise GPUNotFoundError(f"{what}: no such GPU") from e
        if code == pynvml.NVML_ERROR_INVALID_ARGUMENT:
            raise ZeusConfigError(f"{what}: NVML rejected the argument ({e})") from e
        raise ZeusDeviceError(f"{what}: NVML error: {e}") from e


# NVML's clocks event (throttle) reason bits, as documented in nvml.h.
_REASON_BITS: dict[int, ThrottleReason] = {
    0x1: "idle",
    0x2: "clocks_setting",  # applications clocks
    0x4: "power_cap",  # software power cap: the power limit
    0x8: "hw_slowdown",
    0x20: "thermal",  # software thermal slowdown
    0x40: "thermal",  # hardware thermal slowdown
    0x80: "power_brake",
    0x100: "clocks_setting",  # display clock setting
}


def throttle_reasons(mask: int) -> frozenset[ThrottleReason]:
    """NVML's reason bit mask in Zeus's words; bits Zeus does not name (sync boost, ...) are
    ``other``."""
    reasons: set[ThrottleReason] = {r for bit, r in _REASON_BITS.items() if mask & bit}
    if mask & ~sum(_REASON_BITS):
        reasons.add("other")
    return frozenset(reasons)


def _init(pynvml: Any) -> None:
    _nvml_call(pynvml, "initialising NVML", pynvml.nvmlInit)


@functools.cache
def _probe() -> tuple[bool, str]:
    try:
        pynvml = _import_pynvml()
        _init(pynvml)
        count = int(_nvml_call(pynvml, "counting GPUs", pynvml.nvmlDeviceGetCount))
    except ImportError as e:
        return False, f"nvidia-ml-py is not installed ({e})"
    except (ZeusDeviceError, OSError) as e:
        return False, str(e)
    if count == 0:
        return False, "NVML reports no GPU"
    return True, f"NVML reports {count} GPU(s)"


def available() -> bool:
    """Whether NVML loads and reports at least one GPU. Probed once per process (cached)."""
    found, reason = _probe()
    if not found:
        logger.debug("NVML unavailable: %s", reason)
    return found


def status() -> str:
    """Why NVML is or is not usable, in words (for ``zeus show-env``)."""
    return _probe()[1]


def _mw_to_w(milliwatts: Any) -> int:
    return round(int(milliwatts) / 1000)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _visible_handles(pynvml: Any) -> list[Any]:
    """NVML handles in the order the process sees them, honouring ``CUDA_VISIBLE_DEVICES``."""
    count = int(_nvml_call(pynvml, "counting GPUs", pynvml.nvmlDeviceGetCount))
    all_handles = [
        _nvml_call(pynvml, f"GPU {i}", pynvml.nvmlDeviceGetHandleByIndex, i) for i in range(count)
    ]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return all_handles
    handles: list[Any] = []
    for entry in (e.strip() for e in visible.split(",")):
        handle = _resolve_entry(pynvml, entry, all_handles)
        if handle is None:
            if entry:
                logger.warning(
                    "CUDA_VISIBLE_DEVICES entry %r matches no GPU; later entries are ignored "
                    "(as CUDA does)",
                    entry,
                )
            break
        handles.append(handle)
    return handles


def _resolve_entry(pynvml: Any, entry: str, all_handles: list[Any]) -> Any | None:
    if entry.isdigit():
        i = int(entry)
        return all_handles[i] if i < len(all_handles) else None
    if entry.startswith("MIG-"):
        try:
            return _nvml_call(
                pynvml, f"MIG device {entry}", pynvml.nvmlDeviceGetHandleByUUID, entry
            )
        except ZeusDeviceError:
            existing = _mig_uuids(pynvml, all_handles)
            raise GPUNotFoundError(
                f"CUDA_VISIBLE_DEVICES entry {entry!r} names no MIG device; MIG devices here: "
                + (", ".join(existing) if existing else "none (MIG mode is off on every GPU)")
                + " (nvidia-smi -L lists them)"
            ) from None
    if entry.startswith("GPU-"):
        matches = [
            h
            for h in all_handles
            if _text(_nvml_call(pynvml, "GPU UUID", pynvml.nvmlDeviceGetUUID, h)).startswith(entry)
        ]
        return matches[0] if len(matches) == 1 else None
    return None


def _mig_uuids(pynvml: Any, boards: list[Any]) -> list[str]:
    """UUIDs of every MIG device on ``boards`` (for error messages; [] where NVML cannot say)."""
    uuids: list[str] = []
    for board in boards:
        try:
            if not _mig_mode_on(pynvml, board):
                continue
            count = int(pynvml.nvmlDeviceGetMaxMigDeviceCount(board))
        except (pynvml.NVMLError, AttributeError):
            continue
        for i in range(count):
            try:
                mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(board, i)
            except pynvml.NVMLError:
                continue  # an empty slot
            uuids.append(_text(pynvml.nvmlDeviceGetUUID(mig)))
    return uuids


def _mig_mode_on(pynvml: Any, handle: Any) -> bool:
    """Whether a board runs in MIG mode (False where NVML has no MIG support)."""
    get_mode = getattr(pynvml, "nvmlDeviceGetMigMode", None)
    if get_mode is None:
        return False
    try:
        current, _pending = get_mode(handle)
    except pynvml.NVMLError:
        return False  # NOT_SUPPORTED on GPUs without MIG
    return bool(current == getattr(pynvml, "NVML_DEVICE_MIG_ENABLE", 1))


def nvml_gpus(indices: list[int] | None = None, pynvml: Any = None) -> list[NVMLGPU]:
    """The visible NVIDIA GPUs (all, or those at `indices`). ``GPUNotFoundError`` for a bad index."""
    pynvml = pynvml if pynvml is not None else _import_pynvml()
    _init(pynvml)
    handles = _visible_handles(pynvml)
    wanted = list(range(len(handles))) if indices is None else list(indices)
    for i in wanted:
        if not 0 <= i < len(handles):
            allowed = f"0..{len(handles) - 1}" if handles else "none (no visible GPU)"
            raise GPUNotFoundError(
                f"GPU index {i} does not exist; visible indices (after CUDA_VISIBLE_DEVICES): {allowed}"
            )
    return [NVMLGPU(handles[i], i, pynvml) for i in wanted]


def open_gpus(arg: str, indices: list[int] | None) -> list[NVMLGPU]:
    """The ``nvml`` backend of `zeus.device.get_gpus`."""
    if arg:
        raise ZeusConfigError(f"GPU backend 'nvml' takes no argument, got 'nvml:{arg}'")
    return nvml_gpus(indices)


class NVMLGPU(HardwareClock):
    """One NVIDIA GPU (or MIG device). Implements `zeus.device.GPU`."""

    def __init__(self, handle: Any, index: int, pynvml: Any) -> None:
        self._nvml = pynvml
        self._index = index
        self._handle, self.is_mig = self._board_handle(handle)
        self.name_: str = _text(self._call("reading the name", pynvml.nvmlDeviceGetName))
        self.uuid: str = _text(
            _nvml_call(pynvml, "reading the UUID", pynvml.nvmlDeviceGetUUID, handle)
        )
        self.board_uuid: str = (
            _text(self._call("reading the board's UUID", pynvml.nvmlDeviceGetUUID))
            if self.is_mig
            else self.uuid
        )
        self._shared = self.is_mig or _mig_mode_on(pynvml, self._handle)
        min_mw, max_mw = self._call(
            "reading power-limit constraints", pynvml.nvmlDeviceGetPowerManagementLimitConstraints
        )
        self._min_w, self._max_w = _mw_to_w(min_mw), _mw_to_w(max_mw)
        self._default_w = _mw_to_w(
            self._call("reading the default limit", pynvml.nvmlDeviceGetPowerManagementDefaultLimit)
        )
        self._has_counter = self._probe_energy_counter()
        self._has_temperature, self._reasons_fn = self._probe_thermals()
        self._set_reason: str | None = None
        self._set_probed = False

    def _board_handle(self, handle: Any) -> tuple[Any, bool]:
        """The board that meters ``handle`` (a MIG instance's parent), and whether it is MIG."""
        is_mig = getattr(self._nvml, "nvmlDeviceIsMigDeviceHandle", None)
        if is_mig is None:
            return handle, False
        try:
            mig = bool(_nvml_call(self._nvml, "checking MIG", is_mig, handle))
        except ZeusDeviceError:
            return handle, False
        if not mig:
            return handle, False
        board = _nvml_call(
            self._nvml,
            "finding the MIG device's GPU",
            self._nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle,
            handle,
        )
        return board, True

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        return _nvml_call(self._nvml, f"GPU {self._index}: {what}", fn, self._handle, *args)

    def _probe_energy_counter(self) -> bool:
        """Volta and newer have a cumulative energy counter; older GPUs get power integration."""
        arch_fn = getattr(self._nvml, "nvmlDeviceGetArchitecture", None)
        volta = getattr(self._nvml, "NVML_DEVICE_ARCH_VOLTA", None)
        if arch_fn is not None and volta is not None:
            try:
                if int(self._call("reading the architecture", arch_fn)) < volta:
                    return False
            except ZeusDeviceError:
                pass
        try:
            self._call("reading the energy counter", self._nvml.nvmlDeviceGetTotalEnergyConsumption)
        except ZeusDeviceError:
            return False
        return True

    def _probe_thermals(self) -> tuple[bool, Callable[..., int] | None]:
        """Whether the temperature reads, and NVML's reasons function (renamed in 12.x) if it works."""
        try:
            self._call(
                "reading the temperature",
                self._nvml.nvmlDeviceGetTemperature,
                self._nvml.NVML_TEMPERATURE_GPU,
            )
            has_temperature = True
        except ZeusDeviceError:
            has_temperature = False
        for fn_name in (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ):
            fn = getattr(self._nvml, fn_name, None)
            if fn is None:
                continue
            try:
                self._call("reading throttle reasons", fn)
            except ZeusDeviceError:
                continue
            return has_temperature, fn
        return has_temperature, None

    def _shared_reason(self) -> str:
        what = f"a MIG instance of board {self.board_uuid}" if self.is_mig else "in MIG mode"
        return (
            f"GPU {self._index} ({self.uuid}) is {what}: its power limit is the whole board's, "
            "shared with every MIG instance on it, so Zeus does not change it"
        )

    # -- GPU protocol ----------------------------------------------------------------------------

    @property
    def index(self) -> int:
        return self._index

    @property
    def name(self) -> str:
        return self.name_

    @property
    def capabilities(self) -> GPUCapabilities:
        return GPUCapabilities(
            energy_counter=self._has_counter,
            set_power_limit=self._can_set(),
            shared_board=self._shared,
            thermals=self._has_temperature or self._reasons_fn is not None,
        )

    @property
    def board_id(self) -> str:
        return self.board_uuid

    @property
    def set_power_limit_denied_reason(self) -> str | None:
        """Why this process may not change the limit (None when it may)."""
        self._can_set()
        return self._set_reason

    def _can_set(self) -> bool:
        """Probe once by writing the current limit back: a no-op that NVML still permission-checks."""
        if not self._set_probed:
            self._set_probed = True
            if self._shared:
                self._set_reason = self._shared_reason()
                return False
            try:
                current_mw = self._call(
                    "reading the limit", self._nvml.nvmlDeviceGetPowerManagementLimit
                )
                self._call(
                    "setting the limit", self._nvml.nvmlDeviceSetPowerManagementLimit, current_mw
                )
            except ZeusPermissionError:
                self._set_reason = f"no permission: {_PERMISSION_HINT}"
            except NotSupportedError:
                self._set_reason = "this GPU or driver does not support changing the power limit"
            except ZeusDeviceError as e:
                self._set_reason = str(e)
            if self._set_reason:  # debug only: whoever wanted to set a limit reports it once
                logger.debug("GPU %d (%s): %s", self._index, self.name_, self._set_reason)
        return self._set_reason is None

    @property
    def min_power_limit_w(self) -> int:
        return self._min_w

    @property
    def max_power_limit_w(self) -> int:
        return self._max_w

    @property
    def default_power_limit_w(self) -> int:
        return self._default_w

    def get_power_limit_w(self) -> int:
        return _mw_to_w(
            self._call("reading the limit", self._nvml.nvmlDeviceGetPowerManagementLimit)
        )

    def set_power_limit_w(self, watts: int) -> None:
        check_power_limit(watts, self._min_w, self._max_w, f"{self.name_} GPU {self._index}")
        if self._shared:
            raise NotSupportedError(self._shared_reason())
        self._call(
            f"setting the power limit to {watts} W",
            self._nvml.nvmlDeviceSetPowerManagementLimit,
            int(watts) * 1000,
        )
        logger.info("GPU %d: power limit set to %d W", self._index, watts)

    def reset_power_limit(self) -> None:
        self.set_power_limit_w(self._default_w)

    def power_w(self) -> float:
        return float(self._call("reading power", self._nvml.nvmlDeviceGetPowerUsage)) / 1000.0

    def energy_j(self) -> float:
        if not self._has_counter:
            raise NotSupportedError(
                f"GPU {self._index} ({self.name_}) has no energy counter (needs Volta or newer); "
                "use power sampling (PowerMonitor)"
            )
        return (
            float(self._call("reading energy", self._nvml.nvmlDeviceGetTotalEnergyConsumption))
            / 1000.0
        )

    def thermals(self) -> Thermals:
        if not (self._has_temperature or self._reasons_fn is not None):
            raise NotSupportedError(
                f"GPU {self._index} ({self.name_}): NVML reads neither temperature nor throttle "
                "reasons here"
            )
        temperature_c = None
        if self._has_temperature:
            temperature_c = float(
                self._call(
                    "reading the temperature",
                    self._nvml.nvmlDeviceGetTemperature,
                    self._nvml.NVML_TEMPERATURE_GPU,
                )
            )
        reasons = None
        if self._reasons_fn is not None:
            reasons = throttle_reasons(
                int(self._call("reading throttle reasons", self._reasons_fn))
            )
        return Thermals(temperature_c=temperature_c, throttle_reasons=reasons)

    def synchronize(self) -> None:
        """Nothing to do: the framework's own sync (torch/JAX/CuPy) waits for the kernels."""

    def __repr__(self) -> str:
        return f"NVMLGPU(index={self._index}, name={self.name_!r})"
