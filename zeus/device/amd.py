"""AMD GPUs through AMD SMI (the ``amdsmi`` Python library: extra ``amd``). The only module of Zeus
that imports ``amdsmi``.

``amdsmi`` is imported lazily and can be passed in (``amdsmi=``): tests hand in a fake module object.
The package needs ROCm's ``libamd_smi.so`` at import; either missing gives one line saying what to
install. Indices are those a ROCm framework sees: HIP's device order (``hip_id`` where the library
reports it, ROCm 6.4 and newer; AMD SMI's order otherwise), narrowed by ``ROCR_VISIBLE_DEVICES`` and
then by ``HIP_VISIBLE_DEVICES`` (or ``CUDA_VISIBLE_DEVICES``, which HIP also honours), whose entries
are indices or ``GPU-`` UUIDs; as in CUDA the list stops at the first entry that matches nothing.

Energy: AMD SMI's accumulator counts ``counter_resolution`` microjoules per tick. Some firmware keeps
it in 32 bits (it wraps after about a minute at full power): a counter first read below 2**32 is
unfolded at 2**32, and the process's `zeus.device.counters.CounterPoller` reads it often enough. A
counter that reads 0 (reported on MI100/MI250 drivers) is not used: the GPU says it has no energy
counter and `zeus.monitor.ZeusMonitor` integrates sampled power; one that stalls later is caught by
the monitor (``method`` says so). A compute-partitioned GPU (CPX, DPX, ... modes) reports the
power of the whole socket its partitions share, like an NVIDIA MIG instance: ``shared_board``.

Units: AMD SMI speaks microwatts for power caps, watts for power readings and ticks for energy;
everything leaving this module is W and J. Not yet run on AMD hardware: see docs/hardware.md.
"""

from __future__ import annotations

import contextlib
import functools
import io
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
from zeus.device.counters import CounterPoller, WrappingCounter, counter_poller
from zeus.errors import (
    GPUNotFoundError,
    NotSupportedError,
    ZeusConfigError,
    ZeusDeviceError,
    ZeusPermissionError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

INSTALL_HINT = "install the AMD extra: pip install 'zeus-energy[amd]'"
_PERMISSION_HINT = (
    "changing AMD GPU power caps needs root (AMD SMI writes the driver's hwmon power1_cap file); "
    "Zeus will only observe and recommend"
)

# amdsmi_status_t codes (amdsmi.h) that Zeus tells apart.
_STATUS_INVAL = 1
_STATUS_NOT_SUPPORTED = 2
_STATUS_NOT_YET_IMPLEMENTED = 3
_STATUS_NO_PERM = 10
_STATUS_NOT_FOUND = 31

_WIDE_COUNTER = 2**32
"""A counter first read below this is taken to wrap here (32-bit firmware accumulators)."""


def _import_amdsmi() -> Any:
    printed = io.StringIO()  # the package prints its loader errors: the library only logs
    try:
        with contextlib.redirect_stdout(printed):
            import amdsmi
    except ImportError as e:
        raise ZeusDeviceError(f"amdsmi is not installed ({e}); {INSTALL_HINT}") from e
    except Exception as e:  # the package raises KeyError/OSError when libamd_smi.so is missing
        lines = printed.getvalue().strip().splitlines()
        detail = lines[0] if lines else f"{type(e).__name__}: {e}"
        raise ZeusDeviceError(
            f"amdsmi is installed but cannot load AMD SMI's library libamd_smi.so ({detail}); "
            "install ROCm's amd-smi-lib package"
        ) from e
    return amdsmi


def _amd_call(amdsmi: Any, what: str, fn: Callable[..., T], *args: Any) -> T:
    """Call AMD SMI and map its errors to Zeus's few, as `zeus.device.nvml` does for NVML."""
    try:
        return fn(*args)
    except amdsmi.AmdSmiLibraryException as e:
        code = abs(int(getattr(e, "err_code", -1)))
        if code == _STATUS_NO_PERM:
            raise ZeusPermissionError(
                f"{what}: permission denied by AMD SMI; {_PERMISSION_HINT}"
            ) from e
        if code in (_STATUS_NOT_SUPPORTED, _STATUS_NOT_YET_IMPLEMENTED):
            raise NotSupportedError(f"{what}: not supported by this GPU or driver") from e
        if code == _STATUS_NOT_FOUND:
            raise GPUNotFoundError(f"{what}: no such GPU") from e
        if code == _STATUS_INVAL:
            raise ZeusConfigError(f"{what}: AMD SMI rejected the argument") from e
        raise ZeusDeviceError(f"{what}: AMD SMI error {code}") from e
    except amdsmi.AmdSmiException as e:
        raise ZeusDeviceError(f"{what}: AMD SMI error: {e}") from e


def _init(amdsmi: Any) -> list[Any]:
    """Initialise AMD SMI for GPUs (reference-counted by the library); every GPU handle."""
    _amd_call(
        amdsmi, "initialising AMD SMI", amdsmi.amdsmi_init, amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS
    )
    handles: list[Any] = _amd_call(amdsmi, "listing GPUs", amdsmi.amdsmi_get_processor_handles)
    return handles


@functools.cache
def _probe() -> tuple[bool, str]:
    try:
        count = len(_init(_import_amdsmi()))
    except (ZeusDeviceError, OSError) as e:
        return False, str(e)
    if count == 0:
        return False, "AMD SMI reports no GPU"
    return True, f"AMD SMI reports {count} GPU(s)"


def available() -> bool:
    """Whether AMD SMI loads and reports at least one GPU. Probed once per process (cached)."""
    found, reason = _probe()
    if not found:
        logger.debug("AMD SMI unavailable: %s", reason)
    return found


def status() -> str:
    """Why AMD SMI is or is not usable, in words (for ``zeus show-env``)."""
    return _probe()[1]


def _number(value: Any) -> float | None:
    """A reading as a number; None for AMD SMI's ``"N/A"`` and other non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _hip_order(amdsmi: Any, handles: list[Any]) -> list[tuple[Any, str]]:
    """(handle, HIP UUID or "") in HIP's device order, where AMD SMI reports it."""
    get_info = getattr(amdsmi, "amdsmi_get_gpu_enumeration_info", None)  # ROCm 6.4+
    if get_info is None:
        return [(h, "") for h in handles]
    try:
        infos = [_amd_call(amdsmi, "reading HIP ids", get_info, h) for h in handles]
    except ZeusDeviceError:
        return [(h, "") for h in handles]
    ids = [_number(info.get("hip_id")) for info in infos]
    uuids = [str(info.get("hip_uuid") or "") for info in infos]
    if None in ids or len(set(ids)) != len(ids):
        return list(zip(handles, uuids, strict=True))
    order = sorted(range(len(handles)), key=lambda i: ids[i] or 0.0)
    return [(handles[i], uuids[i]) for i in order]


def _visible(amdsmi: Any, handles: list[Any]) -> list[Any]:
    """Handles in the order a ROCm framework numbers them, after the visibility variables."""
    devices = _hip_order(amdsmi, handles)
    hip_var = (
        "HIP_VISIBLE_DEVICES" if "HIP_VISIBLE_DEVICES" in os.environ else "CUDA_VISIBLE_DEVICES"
    )
    for var in ("ROCR_VISIBLE_DEVICES", hip_var):
        value = os.environ.get(var)
        if value is None:
            continue
        chosen: list[tuple[Any, str]] = []
        for entry in (e.strip() for e in value.split(",")):
            match = _match(amdsmi, entry, devices)
            if match is None:
                if entry:
                    logger.warning(
                        "%s entry %r matches no AMD GPU; later entries are ignored", var, entry
                    )
                break
            chosen.append(match)
        devices = chosen
    return [h for h, _ in devices]


def _match(amdsmi: Any, entry: str, devices: list[tuple[Any, str]]) -> tuple[Any, str] | None:
    if entry.isdigit():
        i = int(entry)
        return devices[i] if i < len(devices) else None
    if not entry.startswith("GPU-"):
        return None
    found = []
    for handle, hip_uuid in devices:
        uuid = _amd_call(amdsmi, "reading the UUID", amdsmi.amdsmi_get_gpu_device_uuid, handle)
        names = {hip_uuid, uuid, "GPU-" + uuid.replace("-", "")} - {""}
        if any(name.startswith(entry) for name in names):
            found.append((handle, hip_uuid))
    return found[0] if len(found) == 1 else None


def amd_gpus(
    indices: list[int] | None = None, amdsmi: Any = None, poller: CounterPoller | None = None
) -> list[AMDGPU]:
    """The visible AMD GPUs (all, or those at `indices`). ``GPUNotFoundError`` for a bad index."""
    amdsmi = amdsmi if amdsmi is not None else _import_amdsmi()
    handles = _visible(amdsmi, _init(amdsmi))
    wanted = list(range(len(handles))) if indices is None else list(indices)
    for i in wanted:
        if not 0 <= i < len(handles):
            allowed = f"0..{len(handles) - 1}" if handles else "none (no visible AMD GPU)"
            raise GPUNotFoundError(
                f"GPU index {i} does not exist; visible AMD GPU indices (after "
                f"ROCR_VISIBLE_DEVICES/HIP_VISIBLE_DEVICES): {allowed}"
            )
    return [AMDGPU(handles[i], i, amdsmi, poller) for i in wanted]


def open_gpus(arg: str, indices: list[int] | None) -> list[AMDGPU]:
    """The ``amd`` backend of `zeus.device.get_gpus`."""
    if arg:
        raise ZeusConfigError(f"GPU backend 'amd' takes no argument, got 'amd:{arg}'")
    return amd_gpus(indices)


class AMDGPU(HardwareClock):
    """One AMD GPU (or compute partition). Implements `zeus.device.GPU`."""

    def __init__(
        self, handle: Any, index: int, amdsmi: Any, poller: CounterPoller | None = None
    ) -> None:
        self._smi = amdsmi
        self._handle = handle
        self._index = index
        self._poller = poller if poller is not None else counter_poller()
        asic = self._call("reading the ASIC info", amdsmi.amdsmi_get_gpu_asic_info)
        market_name = str(asic.get("market_name") or "N/A")
        self.name_ = market_name if market_name != "N/A" else "AMD GPU"
        self.uuid = str(self._call("reading the UUID", amdsmi.amdsmi_get_gpu_device_uuid))
        self.partition = self._compute_partition()
        self._shared = self.partition not in ("", "SPX", "N/A")
        serial = str(asic.get("asic_serial") or "N/A")
        self.board_uuid = f"asic:{serial}" if self._shared and serial != "N/A" else self.uuid
        self._min_w, self._max_w, self._default_w = self._limits()
        self._counter = self._probe_energy_counter()
        self._temperature_sensor, self._has_reasons = self._probe_thermals()
        self._set_reason: str | None = None
        self._set_probed = False

    def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        return _amd_call(self._smi, f"AMD GPU {self._index}: {what}", fn, self._handle, *args)

    def _compute_partition(self) -> str:
        get = getattr(self._smi, "amdsmi_get_gpu_compute_partition", None)
        if get is None:
            return ""
        try:
            return str(self._call("reading the compute partition", get)).strip().upper()
        except ZeusDeviceError:
            return ""  # not supported: a GPU that cannot be partitioned

    def _power_caps(self) -> dict[str, Any]:
        info: dict[str, Any] = self._call("reading power caps", self._smi.amdsmi_get_power_cap_info)
        return info

    def _limits(self) -> tuple[int, int, int]:
        caps = self._power_caps()
        max_w = round((_number(caps.get("max_power_cap")) or 0.0) / 1e6)
        default_w = round((_number(caps.get("default_power_cap")) or 0.0) / 1e6) or max_w
        min_w = round((_number(caps.get("min_power_cap")) or 0.0) / 1e6)
        if max_w <= 0:
            raise NotSupportedError(
                f"AMD GPU {self._index} ({self.name_}): the driver reports no power cap range"
            )
        if min_w <= 0:  # seen on some hwmon drivers: treat as "not reported"
            min_w = max(1, default_w // 2)
            logger.warning(
                "AMD GPU %d (%s): the driver reports a minimum power cap of 0 W; Zeus uses half "
                "the default cap, %d W, as the lowest limit to try",
                self._index,
                self.name_,
                min_w,
            )
        return min_w, max_w, min(max(default_w, min_w), max_w)

    def _read_accumulator(self) -> tuple[int, float]:
        """The raw accumulator and its resolution in microjoules per tick (``power`` before 6.4)."""
        info = self._call("reading the energy counter", self._smi.amdsmi_get_energy_count)
        raw = info.get("energy_accumulator", info.get("power"))
        resolution = _number(info.get("counter_resolution"))
        if _number(raw) is None or resolution is None or resolution <= 0:
            raise NotSupportedError(
                f"AMD GPU {self._index}: the energy counter reads {raw!r} at resolution "
                f"{info.get('counter_resolution')!r}"
            )
        return int(raw), resolution

    def _probe_energy_counter(self) -> WrappingCounter | None:
        try:
            first, resolution_uj = self._read_accumulator()
        except ZeusDeviceError:
            return None
        if first == 0:
            logger.warning(
                "AMD GPU %d (%s): its energy counter reads 0 (a known driver issue on some "
                "MI100/MI250 systems); Zeus measures its energy by integrating sampled power",
                self._index,
                self.name_,
            )
            return None
        return WrappingCounter(
            f"AMD GPU {self._index} energy counter",
            lambda: self._read_accumulator()[0],
            wrap_raw=_WIDE_COUNTER if first < _WIDE_COUNTER else 2**64,
            joules_per_raw=resolution_uj * 1e-6,
            max_power_w=float(self._max_w),
        )

    def _probe_thermals(self) -> tuple[Any, bool]:
        """The temperature sensor that reads (hotspot, else edge), and whether throttle status
        (``amdsmi_get_violation_status``, MI300 and ROCm 6.4+) reads."""
        sensor = None
        kinds = self._smi.AmdSmiTemperatureType
        for candidate in (kinds.HOTSPOT, kinds.EDGE):
            try:
                self._temperature(candidate)
            except ZeusDeviceError:
                continue
            sensor = candidate
            break
        get_violations = getattr(self._smi, "amdsmi_get_violation_status", None)
        has_reasons = False
        if get_violations is not None:
            try:
                self._call("reading throttle status", get_violations)
                has_reasons = True
            except ZeusDeviceError:
                pass
        return sensor, has_reasons

    def _temperature(self, sensor: Any) -> float:
        value = self._call(
            "reading the temperature",
            self._smi.amdsmi_get_temp_metric,
            sensor,
            self._smi.AmdSmiTemperatureMetric.CURRENT,
        )
        celsius = float(value)
        return celsius / 1000 if celsius > 1000 else celsius  # millidegrees in some releases

    def _shared_reason(self) -> str:
        return (
            f"AMD GPU {self._index} ({self.uuid}) is a {self.partition} compute partition: its "
            "power cap is the whole socket's, shared with the other partitions, so Zeus does not "
            "change it"
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
            energy_counter=self._counter is not None,
            set_power_limit=self._can_set(),
            shared_board=self._shared,
            thermals=self._temperature_sensor is not None or self._has_reasons,
        )

    @property
    def board_id(self) -> str:
        return self.board_uuid

    @property
    def set_power_limit_denied_reason(self) -> str | None:
        self._can_set()
        return self._set_reason

    def _can_set(self) -> bool:
        """Probe once by writing the current cap back, which the driver permission-checks."""
        if not self._set_probed:
            self._set_probed = True
            if self._shared:
                self._set_reason = self._shared_reason()
                return False
            try:
                current = self._power_caps()["power_cap"]
                self._call("setting the power cap", self._smi.amdsmi_set_power_cap, 0, int(current))
            except ZeusPermissionError:
                self._set_reason = f"no permission: {_PERMISSION_HINT}"
            except NotSupportedError:
                self._set_reason = "this GPU or driver does not support changing the power cap"
            except (ZeusDeviceError, KeyError) as e:
                self._set_reason = str(e)
            if self._set_reason:
                logger.debug("AMD GPU %d (%s): %s", self._index, self.name_, self._set_reason)
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
        return round((_number(self._power_caps().get("power_cap")) or 0.0) / 1e6)

    def set_power_limit_w(self, watts: int) -> None:
        check_power_limit(watts, self._min_w, self._max_w, f"{self.name_} GPU {self._index}")
        if self._shared:
            raise NotSupportedError(self._shared_reason())
        self._call(
            f"setting the power cap to {watts} W",
            self._smi.amdsmi_set_power_cap,
            0,
            int(watts) * 1_000_000,
        )
        logger.info("AMD GPU %d: power cap set to %d W", self._index, watts)

    def reset_power_limit(self) -> None:
        self.set_power_limit_w(self._default_w)

    def power_w(self) -> float:
        """Socket power: the current reading (MI300), else the driver's average (MI200 and older)."""
        info = self._call("reading power", self._smi.amdsmi_get_power_info)
        for key in ("current_socket_power", "average_socket_power"):
            watts = _number(info.get(key))
            if watts is not None:
                return watts
        raise NotSupportedError(f"AMD GPU {self._index} ({self.name_}): no power reading")

    def energy_j(self) -> float:
        if self._counter is None:
            raise NotSupportedError(
                f"AMD GPU {self._index} ({self.name_}) has no usable energy counter; "
                "use power sampling (PowerMonitor)"
            )
        joules = self._counter.read_j()
        self._poller.register(self._counter)  # measuring from now on: keep every wrap seen
        return joules

    def thermals(self) -> Thermals:
        if self._temperature_sensor is None and not self._has_reasons:
            raise NotSupportedError(
                f"AMD GPU {self._index} ({self.name_}): AMD SMI reads neither temperature nor "
                "throttle status here"
            )
        temperature_c = None
        if self._temperature_sensor is not None:
            temperature_c = self._temperature(self._temperature_sensor)
        reasons = None
        if self._has_reasons:
            status = self._call("reading throttle status", self._smi.amdsmi_get_violation_status)
            reasons = violation_reasons(status)
        return Thermals(temperature_c=temperature_c, throttle_reasons=reasons)

    def synchronize(self) -> None:
        """Nothing to do: the framework's own sync (torch on ROCm) waits for the kernels."""

    def __repr__(self) -> str:
        return f"AMDGPU(index={self._index}, name={self.name_!r})"


_VIOLATIONS: dict[str, ThrottleReason] = {
    "active_ppt_pwr": "power_cap",  # package power tracking: the power cap
    "active_socket_thrm": "thermal",
    "active_prochot_thrm": "thermal",
    "active_vr_thrm": "thermal",
    "active_hbm_thrm": "thermal",
}


def violation_reasons(status: dict[str, Any]) -> frozenset[ThrottleReason]:
    """AMD SMI's active violation flags in Zeus's words (``"N/A"`` counts as not active)."""
    return frozenset(reason for key, reason in _VIOLATIONS.items() if status.get(key) is True)
