"""AMD backend against a fake amdsmi module object: contract, units, wraparound, visibility, errors."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from tests.device.contract import GPUContract
from tests.device.fake_amdsmi import RESOLUTION_UJ, FakeAmdGPU, FakeAmdSmi
from zeus.device import amd, get_gpus
from zeus.device.amd import AMDGPU, amd_gpus
from zeus.device.base import GPU
from zeus.device.counters import CounterPoller
from zeus.errors import (
    GPUNotFoundError,
    NotSupportedError,
    ZeusConfigError,
    ZeusDeviceError,
    ZeusPermissionError,
)


@pytest.fixture(autouse=True)
def _no_visibility_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)


def _gpus(n: int = 3) -> list[FakeAmdGPU]:
    return [
        FakeAmdGPU(uuid=f"{i}a000000-0000-0000-0000-00000000000{i}", hip_id=i, power_w=300 + 10 * i)
        for i in range(n)
    ]


def _open(smi: FakeAmdSmi, indices: list[int] | None = None) -> list[AMDGPU]:
    return amd_gpus(indices, amdsmi=smi, poller=CounterPoller(background=False))


class _FakeTime(GPUContract):
    """Device time passes when the test ticks the fake library."""

    smi: FakeAmdSmi

    def open(self, *gpus: FakeAmdGPU, enumeration_info: bool = True) -> AMDGPU:
        self.smi = FakeAmdSmi(list(gpus), enumeration_info=enumeration_info)
        return _open(self.smi)[0]

    def advance(self, gpu: GPU) -> None:
        self.smi.tick(0.5)


class TestAMDContract(_FakeTime):
    @pytest.fixture
    def gpu(self) -> AMDGPU:
        return self.open(*_gpus(1))


class TestAMDZeroCounterContract(_FakeTime):
    """The counter reads 0 (MI100/MI250 reports): no counter, power sampling instead."""

    @pytest.fixture
    def gpu(self) -> AMDGPU:
        return self.open(FakeAmdGPU(uuid="zero", counter="zero"))


class TestAMDMI200Contract(_FakeTime):
    """Older GPU and library: average power only, edge sensor only, no violation status, no HIP
    enumeration info, a 32-bit accumulator."""

    @pytest.fixture
    def gpu(self) -> AMDGPU:
        return self.open(
            FakeAmdGPU(
                uuid="mi250",
                market_name="AMD Instinct MI250X",
                power_key="average_socket_power",
                hotspot=False,
                violations=None,
                width_bits=32,
            ),
            enumeration_info=False,
        )


class TestAMDObserveOnlyContract(_FakeTime):
    @pytest.fixture
    def gpu(self) -> AMDGPU:
        return self.open(FakeAmdGPU(uuid="ro", may_set=False))


class TestAMDPartitionContract(_FakeTime):
    """A CPX compute partition: the socket's figures, shared; its cap is not changed."""

    @pytest.fixture
    def gpu(self) -> AMDGPU:
        return self.open(FakeAmdGPU(uuid="cpx0", partition="CPX"))


def test_units_are_watts_and_joules() -> None:
    smi = FakeAmdSmi(_gpus(1))
    (gpu,) = _open(smi)
    assert gpu.name == "AMD Instinct MI300X"
    assert gpu.power_w() == 300.0
    assert (gpu.min_power_limit_w, gpu.default_power_limit_w, gpu.max_power_limit_w) == (
        200,
        750,
        750,
    )
    before = gpu.energy_j()
    smi.tick(2.0)
    assert gpu.energy_j() - before == pytest.approx(600.0, rel=1e-4)
    gpu.set_power_limit_w(450)
    assert smi.gpus[0].cap_uw == 450_000_000
    assert gpu.get_power_limit_w() == 450


def test_32_bit_accumulator_wrap_is_unfolded() -> None:
    start = 2**32 - round(100 / (RESOLUTION_UJ * 1e-6))  # 100 J below the wrap
    smi = FakeAmdSmi([FakeAmdGPU(uuid="w", width_bits=32, accumulator=start, power_w=500)])
    (gpu,) = _open(smi)
    before = gpu.energy_j()
    smi.tick(1.0)  # 500 J: wraps once
    assert smi.gpus[0].accumulator < start
    assert gpu.energy_j() - before == pytest.approx(500.0, rel=1e-4)


def test_energy_reads_register_the_counter_for_polling() -> None:
    """Once measured, the poller keeps reading the counter: a 32-bit one wraps in minutes."""
    poller = CounterPoller(background=False)
    smi = FakeAmdSmi([FakeAmdGPU(uuid="p", width_bits=32, power_w=700)])
    (gpu,) = amd_gpus(amdsmi=smi, poller=poller)
    assert poller.counters == []
    first = gpu.energy_j()
    (counter,) = poller.counters
    # 2**32 ticks of 15.259 uJ at the 750 W maximum cap: 87 s per wrap, polled 4 times per wrap.
    assert counter.wrap_period_s == pytest.approx(2**32 * RESOLUTION_UJ * 1e-6 / 750)
    assert poller.interval_s == pytest.approx(counter.wrap_period_s / 4)
    for _ in range(5):  # 5 x 60 s at 700 W: three wraps, each seen by a poll
        smi.tick(60.0)
        poller.poll()
    assert gpu.energy_j() - first == pytest.approx(5 * 60 * 700, rel=1e-4)


def test_zero_counter_says_why(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="zeus.device.amd"):
        (gpu,) = _open(FakeAmdSmi([FakeAmdGPU(uuid="z", counter="zero")]))
    assert gpu.capabilities.energy_counter is False
    assert "reads 0" in caplog.text and "integrating sampled power" in caplog.text
    with pytest.raises(NotSupportedError, match="no usable energy counter"):
        gpu.energy_j()


def test_old_library_names_the_accumulator_power() -> None:
    """amdsmi before 6.4 returns the accumulator under the key ``power``."""

    class OldSmi(FakeAmdSmi):
        def amdsmi_get_energy_count(self, gpu: FakeAmdGPU) -> dict[str, object]:
            info = super().amdsmi_get_energy_count(gpu)
            info["power"] = info.pop("energy_accumulator")
            return info

    smi = OldSmi(_gpus(1))
    (gpu,) = _open(smi)
    before = gpu.energy_j()
    smi.tick(1.0)
    assert gpu.energy_j() - before == pytest.approx(300.0, rel=1e-4)


def test_thermals() -> None:
    smi = FakeAmdSmi(_gpus(1))
    (gpu,) = _open(smi)
    assert gpu.thermals().temperature_c == 61.0
    assert gpu.thermals().throttle_reasons == frozenset()
    assert smi.gpus[0].violations is not None
    smi.gpus[0].violations.update(active_socket_thrm=True, active_ppt_pwr=True)
    assert gpu.thermals().throttle_reasons == {"thermal", "power_cap"}


def test_millidegree_temperatures_are_converted() -> None:
    (gpu,) = _open(FakeAmdSmi([FakeAmdGPU(uuid="m", temperature_c=72_000)]))
    assert gpu.thermals().temperature_c == 72.0


def test_hip_order_and_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = _gpus(3)
    gpus[0].hip_id, gpus[2].hip_id = 2, 0  # AMD SMI lists them in another order than HIP
    smi = FakeAmdSmi(gpus)
    assert [g.uuid[0] for g in _open(smi)] == ["2", "1", "0"]
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "2,0")
    assert [g.uuid[0] for g in _open(smi)] == ["0", "2"]
    assert [g.index for g in _open(smi)] == [0, 1]


def test_rocr_then_hip_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "1,2")  # the runtime sees GPUs 1 and 2 ...
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")  # ... and HIP the second of those
    (gpu,) = _open(FakeAmdSmi(_gpus(3)))
    assert gpu.uuid.startswith("2")


def test_cuda_visible_devices_counts_when_hip_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    (gpu,) = _open(FakeAmdSmi(_gpus(3)))
    assert gpu.uuid.startswith("1")
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "2")
    (gpu,) = _open(FakeAmdSmi(_gpus(3)))
    assert gpu.uuid.startswith("2")


def test_uuid_entries_and_truncation(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = _gpus(3)
    gpus[1].hip_uuid = "GPU-5bc1d9a2e3f40718"
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "GPU-5bc1,0,7,2")
    found = _open(FakeAmdSmi(gpus))
    assert [g.uuid[0] for g in found] == ["1", "0"]  # stops at 7, as CUDA does


def test_without_enumeration_info_amd_smi_order_is_used() -> None:
    gpus = _gpus(2)
    gpus[0].hip_id, gpus[1].hip_id = 1, 0
    found = _open(FakeAmdSmi(gpus, enumeration_info=False))
    assert [g.uuid[0] for g in found] == ["0", "1"]


def test_missing_index_names_visible_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "0,1")
    with pytest.raises(GPUNotFoundError, match=r"visible AMD GPU indices .*: 0\.\.1"):
        _open(FakeAmdSmi(_gpus()), [2])


def test_permission_denied_is_reported_not_crashed() -> None:
    smi = FakeAmdSmi([FakeAmdGPU(uuid="x", may_set=False)])
    (gpu,) = _open(smi)
    assert gpu.capabilities.set_power_limit is False
    assert "needs root" in (gpu.set_power_limit_denied_reason or "")
    with pytest.raises(ZeusPermissionError, match="permission denied by AMD SMI"):
        gpu.set_power_limit_w(300)


def test_permission_probe_writes_back_the_current_cap() -> None:
    smi = FakeAmdSmi([FakeAmdGPU(uuid="x", cap_uw=500_000_000)])
    (gpu,) = _open(smi)
    assert gpu.capabilities.set_power_limit is True
    assert smi.set_calls == [("x", 500_000_000)]


def test_cap_not_supported() -> None:
    (gpu,) = _open(FakeAmdSmi([FakeAmdGPU(uuid="x", cap_supported=False)]))
    assert "does not support" in (gpu.set_power_limit_denied_reason or "")
    with pytest.raises(NotSupportedError):
        gpu.set_power_limit_w(300)


def test_partition_is_a_shared_board() -> None:
    smi = FakeAmdSmi([FakeAmdGPU(uuid=f"cpx{i}", partition="CPX") for i in range(2)])
    first, second = _open(smi)
    assert first.capabilities.shared_board and first.board_id == second.board_id == "asic:0x1234"
    assert "CPX compute partition" in (first.set_power_limit_denied_reason or "")
    assert smi.set_calls == []  # not even the permission probe touches a shared cap


def test_out_of_range_limit_is_config_error_not_a_call() -> None:
    smi = FakeAmdSmi(_gpus(1))
    (gpu,) = _open(smi)
    smi.set_calls.clear()
    with pytest.raises(ZeusConfigError, match=r"200\.\.750 W"):
        gpu.set_power_limit_w(800)
    assert smi.set_calls == []


def test_unknown_error_becomes_device_error() -> None:
    class Broken(FakeAmdSmi):
        def amdsmi_get_power_info(self, gpu: FakeAmdGPU) -> dict[str, object]:
            raise self.AmdSmiLibraryException(0xFFFFFFFF)

    (gpu,) = _open(Broken(_gpus(1)))
    with pytest.raises(ZeusDeviceError, match="AMD GPU 0: reading power: AMD SMI error"):
        gpu.power_w()


def test_not_found_becomes_gpu_not_found() -> None:
    class Gone(FakeAmdSmi):
        def amdsmi_get_power_info(self, gpu: FakeAmdGPU) -> dict[str, object]:
            raise self.AmdSmiLibraryException(31)

    (gpu,) = _open(Gone(_gpus(1)))
    with pytest.raises(GPUNotFoundError, match="no such GPU"):
        gpu.power_w()


def test_zero_minimum_cap_is_replaced_and_said(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="zeus.device.amd"):
        (gpu,) = _open(FakeAmdSmi([FakeAmdGPU(uuid="m", min_uw=0, default_uw=560_000_000)]))
    assert gpu.min_power_limit_w == 280
    assert "minimum power cap of 0 W" in caplog.text


def test_library_missing_names_what_to_install() -> None:
    """The real amdsmi package is installed here, without ROCm's libamd_smi.so."""
    assert amd.available() is False
    assert "libamd_smi.so" in amd.status()
    with pytest.raises(ZeusDeviceError, match=r"libamd_smi\.so"):
        get_gpus(backend="amd")


def test_package_missing_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['amdsmi'] = None\n"  # what an uninstalled package looks like
        "from zeus.device import amd\n"
        "print(amd.status())"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "amdsmi is not installed" in out.stdout
    assert "pip install 'zeus-energy[amd]'" in out.stdout


def test_backend_takes_no_argument() -> None:
    with pytest.raises(ZeusConfigError, match="'amd' takes no argument"):
        get_gpus(backend="amd:0")
