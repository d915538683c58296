"""A fake ``amdsmi`` module object: the subset of AMD SMI's Python API that `zeus.device.amd` calls.

Names, argument orders, units and return shapes follow the real package (amdsmi 7.0: power caps in
microwatts, socket power in watts, an energy accumulator in ticks of ``counter_resolution`` µJ,
``"N/A"`` for readings the GPU lacks). It is plain data handed to ``amd_gpus(amdsmi=...)``: nothing
is patched. Device time is explicit: ``tick(seconds)`` advances every GPU's accumulator by its power.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_UNKNOWN_ERROR = 0xFFFFFFFF


class AmdSmiException(Exception):
    """Base of the real package's exceptions."""


class AmdSmiLibraryException(AmdSmiException):
    """Like the real one: carries the status code in ``err_code``."""

    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = abs(err_code)


class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_GPUS = 2


class AmdSmiTemperatureType(IntEnum):
    EDGE = 0
    HOTSPOT = 1
    VRAM = 2


class AmdSmiTemperatureMetric(IntEnum):
    CURRENT = 0


MI300X = "AMD Instinct MI300X"
RESOLUTION_UJ = 15.259  # 2**-16 J per tick, as the MI200/MI300 firmware reports


@dataclass
class FakeAmdGPU:
    uuid: str
    hip_id: int = 0
    hip_uuid: str = ""
    market_name: str = MI300X
    asic_serial: str = "0x1234"
    min_uw: int = 200_000_000
    max_uw: int = 750_000_000
    default_uw: int = 750_000_000
    cap_uw: int = 750_000_000
    power_w: int = 400
    power_key: str = "current_socket_power"  # MI200 and older: "average_socket_power"
    accumulator: int = 10_000_000
    width_bits: int = 64  # 32: the accumulator wraps at 2**32 ticks
    counter: str = "ok"  # "zero": always reads 0; "stalled": stops moving
    temperature_c: int = 61
    hotspot: bool = True  # False: only the edge sensor reads
    violations: dict[str, Any] | None = field(
        default_factory=lambda: {
            "active_ppt_pwr": False,
            "active_socket_thrm": False,
            "active_prochot_thrm": "N/A",
            "active_vr_thrm": False,
            "active_hbm_thrm": False,
        }
    )  # None: MI200 and older, status not supported
    partition: str = "SPX"
    may_set: bool = True
    cap_supported: bool = True


class FakeAmdSmi:
    """Quacks like the ``amdsmi`` module for the calls Zeus makes."""

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiInitFlags = AmdSmiInitFlags
    AmdSmiTemperatureType = AmdSmiTemperatureType
    AmdSmiTemperatureMetric = AmdSmiTemperatureMetric

    def __init__(self, gpus: list[FakeAmdGPU], *, enumeration_info: bool = True) -> None:
        self.gpus = gpus
        self.initialised = 0
        self.set_calls: list[tuple[str, int]] = []
        if not enumeration_info:  # before ROCm 6.4 the function does not exist
            self.amdsmi_get_gpu_enumeration_info = None

    def tick(self, seconds: float) -> None:
        for gpu in self.gpus:
            if gpu.counter == "ok":
                ticks = round(gpu.power_w * seconds * 1e6 / RESOLUTION_UJ)
                gpu.accumulator = (gpu.accumulator + ticks) % 2**gpu.width_bits

    # -- the amdsmi surface --------------------------------------------------------------------

    def amdsmi_init(self, flag: AmdSmiInitFlags = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        assert isinstance(flag, AmdSmiInitFlags)
        self.initialised += 1

    def amdsmi_get_processor_handles(self) -> list[FakeAmdGPU]:
        return list(self.gpus)

    def amdsmi_get_gpu_enumeration_info(self, gpu: FakeAmdGPU) -> dict[str, Any]:
        return {
            "drm_render": 128 + gpu.hip_id,
            "drm_card": gpu.hip_id,
            "hsa_id": gpu.hip_id + 1,
            "hip_id": gpu.hip_id,
            "hip_uuid": gpu.hip_uuid,
        }

    def amdsmi_get_gpu_asic_info(self, gpu: FakeAmdGPU) -> dict[str, Any]:
        return {
            "market_name": gpu.market_name,
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "asic_serial": gpu.asic_serial,
            "num_compute_units": 304,
        }

    def amdsmi_get_gpu_device_uuid(self, gpu: FakeAmdGPU) -> str:
        return gpu.uuid

    def amdsmi_get_gpu_compute_partition(self, gpu: FakeAmdGPU) -> str:
        return gpu.partition

    def amdsmi_get_power_cap_info(self, gpu: FakeAmdGPU) -> dict[str, int]:
        return {
            "power_cap": gpu.cap_uw,
            "default_power_cap": gpu.default_uw,
            "dpm_cap": 0,
            "min_power_cap": gpu.min_uw,
            "max_power_cap": gpu.max_uw,
        }

    def amdsmi_set_power_cap(self, gpu: FakeAmdGPU, sensor_ind: int, cap: int) -> None:
        assert isinstance(sensor_ind, int) and isinstance(cap, int)
        if not gpu.cap_supported:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        if not gpu.may_set:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NO_PERM)
        if not gpu.min_uw <= cap <= gpu.max_uw:
            raise AmdSmiLibraryException(AMDSMI_STATUS_INVAL)
        gpu.cap_uw = cap
        self.set_calls.append((gpu.uuid, cap))

    def amdsmi_get_power_info(self, gpu: FakeAmdGPU) -> dict[str, Any]:
        info: dict[str, Any] = {
            "socket_power": "N/A",
            "current_socket_power": "N/A",
            "average_socket_power": "N/A",
            "gfx_voltage": 800,
            "soc_voltage": 900,
            "mem_voltage": 1200,
            "power_limit": gpu.cap_uw // 1_000_000,
        }
        info[gpu.power_key] = gpu.power_w
        return info

    def amdsmi_get_energy_count(self, gpu: FakeAmdGPU) -> dict[str, Any]:
        return {
            "energy_accumulator": 0 if gpu.counter == "zero" else gpu.accumulator,
            "counter_resolution": RESOLUTION_UJ,
            "timestamp": 1_700_000_000_000_000_000,
        }

    def amdsmi_get_temp_metric(
        self, gpu: FakeAmdGPU, sensor: AmdSmiTemperatureType, metric: AmdSmiTemperatureMetric
    ) -> int:
        assert isinstance(sensor, AmdSmiTemperatureType)
        assert isinstance(metric, AmdSmiTemperatureMetric)
        if sensor == AmdSmiTemperatureType.HOTSPOT and not gpu.hotspot:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        return gpu.temperature_c

    def amdsmi_get_violation_status(self, gpu: FakeAmdGPU) -> dict[str, Any]:
        if gpu.violations is None:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        return dict(gpu.violations)
