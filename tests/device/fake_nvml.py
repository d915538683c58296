"""A fake NVML module object (the subset of pynvml that `zeus.device.nvml` calls).

It is plain data handed to ``nvml_gpus(pynvml=...)``: nothing is patched. Device time is explicit:
``tick(seconds)`` advances every board's energy counter by its power draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class NVMLError(Exception):
    """Like pynvml's: carries the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class FakeBoard:
    uuid: str
    name: str | bytes = "NVIDIA A100-SXM4-40GB"
    arch: int = 7  # Ampere
    min_mw: int = 100_000
    max_mw: int = 400_000
    default_mw: int = 400_000
    limit_mw: int = 400_000
    power_mw: int = 250_000
    energy_mj: int = 1_000_000
    counter_stalled: bool = False  # tick() leaves the energy counter where it is
    may_set_limit: bool = True
    limit_supported: bool = True
    temperature_c: int = 55
    reasons: int = 0  # NVML clocks event reason bits
    thermals_supported: bool = True
    mig_mode: bool = False  # also on whenever ``migs`` is not empty
    migs: list[FakeMig] = field(default_factory=list)


@dataclass
class FakeMig:
    uuid: str
    parent: FakeBoard


class FakeNVML:
    """Quacks like the ``pynvml`` module for the calls Zeus makes."""

    NVMLError = NVMLError
    NVML_ERROR_INVALID_ARGUMENT = 2
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NO_PERMISSION = 4
    NVML_ERROR_NOT_FOUND = 6
    NVML_ERROR_UNKNOWN = 999
    NVML_DEVICE_ARCH_VOLTA = 5
    NVML_DEVICE_ARCH_AMPERE = 7
    NVML_TEMPERATURE_GPU = 0
    NVML_DEVICE_MIG_DISABLE = 0
    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(self, boards: list[FakeBoard]) -> None:
        self.boards = boards
        self.initialised = 0
        self.set_calls: list[tuple[str, int]] = []

    def tick(self, seconds: float) -> None:
        for board in self.boards:
            if not board.counter_stalled:
                board.energy_mj += round(board.power_mw * seconds)

    # -- the pynvml surface ------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.boards)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeBoard:
        if not 0 <= i < len(self.boards):
            raise NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
        return self.boards[i]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeBoard | FakeMig:
        for board in self.boards:
            if board.uuid == uuid:
                return board
            for mig in board.migs:
                if mig.uuid == uuid:
                    return mig
        raise NVMLError(self.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle: FakeBoard | FakeMig) -> str:
        return handle.uuid

    def nvmlDeviceIsMigDeviceHandle(self, handle: FakeBoard | FakeMig) -> int:
        return int(isinstance(handle, FakeMig))

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: FakeMig) -> FakeBoard:
        return handle.parent

    def nvmlDeviceGetName(self, board: FakeBoard) -> str | bytes:
        return board.name

    def nvmlDeviceGetArchitecture(self, board: FakeBoard) -> int:
        return board.arch

    def nvmlDeviceGetPowerManagementLimitConstraints(self, board: FakeBoard) -> list[int]:
        return [board.min_mw, board.max_mw]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, board: FakeBoard) -> int:
        return board.default_mw

    def nvmlDeviceGetPowerManagementLimit(self, board: FakeBoard) -> int:
        return board.limit_mw

    def nvmlDeviceSetPowerManagementLimit(self, board: FakeBoard, milliwatts: int) -> None:
        if not board.limit_supported:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        if not board.may_set_limit:
            raise NVMLError(self.NVML_ERROR_NO_PERMISSION)
        if not board.min_mw <= milliwatts <= board.max_mw:
            raise NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
        board.limit_mw = milliwatts
        self.set_calls.append((board.uuid, milliwatts))

    def nvmlDeviceGetPowerUsage(self, board: FakeBoard) -> int:
        return board.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, board: FakeBoard) -> int:
        if board.arch < self.NVML_DEVICE_ARCH_VOLTA:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return board.energy_mj

    def nvmlDeviceGetTemperature(self, board: FakeBoard, sensor: int) -> int:
        if not board.thermals_supported or sensor != self.NVML_TEMPERATURE_GPU:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return board.temperature_c

    def nvmlDeviceGetCurrentClocksEventReasons(self, board: FakeBoard) -> int:
        if not board.thermals_supported:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return board.reasons

    # -- MIG ---------------------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, board: FakeBoard) -> list[int]:
        if board.arch < self.NVML_DEVICE_ARCH_AMPERE:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        mode = int(board.mig_mode or bool(board.migs))
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, board: FakeBoard) -> int:
        return 7 if board.mig_mode or board.migs else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, board: FakeBoard, index: int) -> FakeMig:
        if not 0 <= index < len(board.migs):
            raise NVMLError(self.NVML_ERROR_NOT_FOUND)
        return board.migs[index]
