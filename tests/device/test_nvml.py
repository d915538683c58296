"""NVML backend against a fake NVML module object: contract, visibility, errors, permissions."""

from __future__ import annotations

import pytest

from tests.device.contract import GPUContract
from tests.device.fake_nvml import FakeBoard, FakeMig, FakeNVML
from zeus.device.base import GPU, Thermals
from zeus.device.nvml import NVMLGPU, nvml_gpus
from zeus.errors import (
    GPUNotFoundError,
    NotSupportedError,
    ZeusConfigError,
    ZeusDeviceError,
    ZeusPermissionError,
)


def _boards(n: int = 3) -> list[FakeBoard]:
    return [FakeBoard(uuid=f"GPU-{i}aaa-{i}", power_mw=200_000 + 10_000 * i) for i in range(n)]


class TestNVMLContract(GPUContract):
    @pytest.fixture
    def gpu(self) -> NVMLGPU:
        self.nvml = FakeNVML(_boards(1))
        return nvml_gpus(pynvml=self.nvml)[0]

    def advance(self, gpu: GPU) -> None:
        self.nvml.tick(0.5)


class TestPreVoltaContract(GPUContract):
    @pytest.fixture
    def gpu(self) -> NVMLGPU:
        return nvml_gpus(pynvml=FakeNVML([FakeBoard(uuid="GPU-p100", arch=4)]))[0]


def test_units_are_watts_and_joules() -> None:
    nvml = FakeNVML(_boards(1))
    (gpu,) = nvml_gpus(pynvml=nvml)
    assert gpu.power_w() == 200.0
    assert (gpu.min_power_limit_w, gpu.max_power_limit_w, gpu.default_power_limit_w) == (
        100,
        400,
        400,
    )
    before = gpu.energy_j()
    nvml.tick(2.0)
    assert gpu.energy_j() - before == pytest.approx(400.0)
    gpu.set_power_limit_w(250)
    assert nvml.boards[0].limit_mw == 250_000


def test_cuda_visible_devices_indices_reorder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    gpus = nvml_gpus(pynvml=FakeNVML(_boards()))
    assert [g.uuid for g in gpus] == ["GPU-2aaa-2", "GPU-0aaa-0"]
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].power_w() == 220.0


def test_cuda_visible_devices_uuid_prefix_and_mig(monkeypatch: pytest.MonkeyPatch) -> None:
    boards = _boards()
    boards[1].migs.append(FakeMig(uuid="MIG-abc", parent=boards[1]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-abc,GPU-0aaa")
    gpus = nvml_gpus(pynvml=FakeNVML(boards))
    assert [g.uuid for g in gpus] == ["MIG-abc", "GPU-0aaa-0"]
    assert gpus[0].power_w() == 210.0  # the MIG device reports its board's power


def test_invalid_visible_entry_truncates_like_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,7,0")
    gpus = nvml_gpus(pynvml=FakeNVML(_boards()))
    assert [g.uuid for g in gpus] == ["GPU-1aaa-1"]


def test_missing_index_names_visible_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(GPUNotFoundError, match=r"visible indices .*: 0\.\.1"):
        nvml_gpus([2], pynvml=FakeNVML(_boards()))


def test_no_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert nvml_gpus(pynvml=FakeNVML(_boards())) == []
    with pytest.raises(GPUNotFoundError, match="no visible GPU"):
        nvml_gpus([0], pynvml=FakeNVML(_boards()))


def test_permission_denied_is_reported_not_crashed() -> None:
    board = FakeBoard(uuid="GPU-x", may_set_limit=False)
    (gpu,) = nvml_gpus(pynvml=FakeNVML([board]))
    assert gpu.capabilities.set_power_limit is False
    assert gpu.set_power_limit_denied_reason is not None
    assert "CAP_SYS_ADMIN" in gpu.set_power_limit_denied_reason
    with pytest.raises(ZeusPermissionError, match="permission denied"):
        gpu.set_power_limit_w(200)


def test_permission_probe_writes_back_the_current_limit() -> None:
    nvml = FakeNVML([FakeBoard(uuid="GPU-x", limit_mw=300_000)])
    (gpu,) = nvml_gpus(pynvml=nvml)
    assert gpu.capabilities.set_power_limit is True
    assert nvml.set_calls == [("GPU-x", 300_000)]
    assert gpu.set_power_limit_denied_reason is None


def test_limit_not_supported() -> None:
    (gpu,) = nvml_gpus(pynvml=FakeNVML([FakeBoard(uuid="GPU-x", limit_supported=False)]))
    assert gpu.capabilities.set_power_limit is False
    assert "does not support" in (gpu.set_power_limit_denied_reason or "")


def test_pre_volta_has_no_counter() -> None:
    (gpu,) = nvml_gpus(pynvml=FakeNVML([FakeBoard(uuid="GPU-p", arch=4)]))
    assert gpu.capabilities.energy_counter is False
    with pytest.raises(NotSupportedError, match="Volta"):
        gpu.energy_j()


def test_out_of_range_limit_is_config_error_not_nvml_call() -> None:
    nvml = FakeNVML(_boards(1))
    (gpu,) = nvml_gpus(pynvml=nvml)
    with pytest.raises(ZeusConfigError, match=r"100\.\.400 W"):
        gpu.set_power_limit_w(450)
    assert nvml.set_calls == []


def test_unknown_nvml_error_becomes_device_error() -> None:
    class Broken(FakeNVML):
        def nvmlDeviceGetPowerUsage(self, board: FakeBoard) -> int:
            raise self.NVMLError(self.NVML_ERROR_UNKNOWN)

    (gpu,) = nvml_gpus(pynvml=Broken(_boards(1)))
    with pytest.raises(ZeusDeviceError, match="GPU 0: reading power"):
        gpu.power_w()


def test_bytes_names_are_decoded() -> None:
    (gpu,) = nvml_gpus(pynvml=FakeNVML([FakeBoard(uuid="GPU-b", name=b"Tesla V100-SXM2-32GB")]))
    assert gpu.name == "Tesla V100-SXM2-32GB"


# -- MIG: a board's figures, shared -----------------------------------------------------------------


def _mig_boards() -> list[FakeBoard]:
    boards = _boards(2)
    boards[1].migs = [FakeMig(uuid=f"MIG-{k}", parent=boards[1]) for k in ("a", "b")]
    return boards


class TestMigContract(GPUContract):
    """A MIG instance: its board's figures, flagged as shared; its limit is not changed."""

    @pytest.fixture
    def gpu(self, monkeypatch: pytest.MonkeyPatch) -> NVMLGPU:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-a")
        self.nvml = FakeNVML(_mig_boards())
        return nvml_gpus(pynvml=self.nvml)[0]

    def advance(self, gpu: GPU) -> None:
        self.nvml.tick(0.5)


def test_mig_instances_report_their_shared_board(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-a,MIG-b")
    nvml = FakeNVML(_mig_boards())
    a, b = nvml_gpus(pynvml=nvml)
    assert a.capabilities.shared_board and b.capabilities.shared_board
    assert a.board_id == b.board_id == "GPU-1aaa-1"
    assert a.uuid == "MIG-a"
    assert "MIG instance of board GPU-1aaa-1" in (a.set_power_limit_denied_reason or "")
    with pytest.raises(NotSupportedError, match="shared with every MIG instance"):
        a.set_power_limit_w(200)
    assert nvml.set_calls == []  # not even the permission probe writes a shared board's limit


def test_board_in_mig_mode_is_shared_and_plain_boards_are_not() -> None:
    plain, board = nvml_gpus(pynvml=FakeNVML(_mig_boards()))
    assert not plain.capabilities.shared_board and plain.board_id == plain.uuid
    assert board.capabilities.shared_board
    assert "in MIG mode" in (board.set_power_limit_denied_reason or "")


def test_mig_uuid_that_does_not_exist_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-zzz")
    with pytest.raises(
        GPUNotFoundError, match="'MIG-zzz' names no MIG device; MIG devices here: MIG-a, MIG-b"
    ):
        nvml_gpus(pynvml=FakeNVML(_mig_boards()))
    with pytest.raises(GPUNotFoundError, match="none \\(MIG mode is off on every GPU\\)"):
        nvml_gpus(pynvml=FakeNVML(_boards()))


# -- temperature and throttle reasons -------------------------------------------------------------


def test_thermals_map_nvml_reason_bits() -> None:
    nvml = FakeNVML(_boards(1))
    (gpu,) = nvml_gpus(pynvml=nvml)
    assert gpu.capabilities.thermals
    assert gpu.thermals() == Thermals(temperature_c=55.0, throttle_reasons=frozenset())
    nvml.boards[0].reasons = 0x4 | 0x40 | 0x10  # power cap, HW thermal slowdown, sync boost
    nvml.boards[0].temperature_c = 88
    thermals = gpu.thermals()
    assert thermals.temperature_c == 88.0
    assert thermals.throttle_reasons == {"power_cap", "thermal", "other"}


def test_thermals_unsupported() -> None:
    (gpu,) = nvml_gpus(pynvml=FakeNVML([FakeBoard(uuid="GPU-t", thermals_supported=False)]))
    assert gpu.capabilities.thermals is False
    with pytest.raises(NotSupportedError, match="neither temperature nor throttle reasons"):
        gpu.thermals()
