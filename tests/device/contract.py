"""Contract test suites: every GPU backend and every CPU backend passes the same tests.

A backend's test module subclasses `GPUContract` / `CPUContract` and provides a ``gpu`` / ``cpu``
fixture (plus ``advance()`` to let device time pass where the fake needs it).

Device time passes differently on the two kinds of GPU: hardware (and fakes of it) on wall time, a
``virtual_time`` device (the replay GPU) only through the steps marked on it.
"""

from __future__ import annotations

import time
from typing import get_args

import pytest

from zeus.device.base import CPU, GPU, CPUEnergy, Thermals, ThrottleReason
from zeus.errors import NotSupportedError, ZeusConfigError, ZeusPermissionError


class GPUContract:
    """Behaviour every `zeus.device.GPU` implementation must have."""

    def advance(self, gpu: GPU) -> None:
        """Let some device time pass: a marked step on virtual time, real time otherwise."""
        if gpu.capabilities.virtual_time:
            gpu.step(8)
        else:
            time.sleep(0.02)

    def test_is_a_gpu(self, gpu: GPU) -> None:
        assert isinstance(gpu, GPU)
        assert isinstance(gpu.name, str) and gpu.name
        assert isinstance(gpu.index, int)
        assert isinstance(gpu.uuid, str) and gpu.uuid
        assert isinstance(gpu.board_id, str) and gpu.board_id

    def test_permission_and_its_reason_agree(self, gpu: GPU) -> None:
        """A GPU that may not change its limit says why, in words; one that may gives no reason."""
        reason = gpu.set_power_limit_denied_reason
        if gpu.capabilities.set_power_limit:
            assert reason is None
        else:
            assert isinstance(reason, str) and reason
            with pytest.raises((ZeusPermissionError, NotSupportedError)):
                gpu.set_power_limit_w(gpu.min_power_limit_w)

    def test_limits_are_ordered_whole_watts(self, gpu: GPU) -> None:
        lo, default, hi = gpu.min_power_limit_w, gpu.default_power_limit_w, gpu.max_power_limit_w
        assert all(isinstance(x, int) for x in (lo, default, hi))
        assert 0 < lo < hi
        assert lo <= default <= hi

    def test_set_get_reset_power_limit(self, gpu: GPU) -> None:
        if not gpu.capabilities.set_power_limit:
            return  # observe-only: test_permission_and_its_reason_agree covers it
        target = gpu.min_power_limit_w
        gpu.set_power_limit_w(target)
        assert gpu.get_power_limit_w() == target
        gpu.reset_power_limit()
        assert gpu.get_power_limit_w() == gpu.default_power_limit_w

    @pytest.mark.parametrize("where", ["below", "above"])
    def test_limit_outside_range_names_the_range(self, gpu: GPU, where: str) -> None:
        lo, hi = gpu.min_power_limit_w, gpu.max_power_limit_w
        before = gpu.get_power_limit_w()
        with pytest.raises(ZeusConfigError) as info:
            gpu.set_power_limit_w(lo - 1 if where == "below" else hi + 1)
        assert f"{lo}..{hi} W" in str(info.value)
        assert gpu.get_power_limit_w() == before

    def test_power_is_positive_watts(self, gpu: GPU) -> None:
        watts = gpu.power_w()
        assert isinstance(watts, float)
        assert 0 < watts < 2000

    def test_energy_counter_grows_or_is_unsupported(self, gpu: GPU) -> None:
        if not gpu.capabilities.energy_counter:
            with pytest.raises(NotSupportedError):
                gpu.energy_j()
            return
        first = gpu.energy_j()
        self.advance(gpu)
        second = gpu.energy_j()
        assert second > first

    def test_thermals_or_unsupported(self, gpu: GPU) -> None:
        if not gpu.capabilities.thermals:
            with pytest.raises(NotSupportedError):
                gpu.thermals()
            return
        thermals = gpu.thermals()
        assert isinstance(thermals, Thermals)
        assert thermals.temperature_c is not None or thermals.throttle_reasons is not None
        if thermals.temperature_c is not None:
            assert 0 < thermals.temperature_c < 150  # °C, not millidegrees
        if thermals.throttle_reasons is not None:
            assert thermals.throttle_reasons <= set(get_args(ThrottleReason))

    def test_synchronize_returns(self, gpu: GPU) -> None:
        gpu.synchronize()
        gpu.synchronize()

    def test_clock_advances_with_device_time(self, gpu: GPU) -> None:
        first = gpu.clock_s()
        self.advance(gpu)
        assert gpu.clock_s() > first

    def test_steps_move_virtual_time_only(self, gpu: GPU) -> None:
        """A marked step advances a virtual clock by a positive time and the counter by power x
        time; on wall time it is accepted and changes nothing measurable."""
        if not gpu.capabilities.virtual_time:
            gpu.step(32)
            gpu.step(None, forward_only=True)
            with pytest.raises(NotSupportedError):
                gpu.power_timeline_w(0.0, gpu.clock_s())
            return
        clock, energy = gpu.clock_s(), gpu.energy_j()
        gpu.step(32)
        elapsed_s = gpu.clock_s() - clock
        assert elapsed_s > 0
        assert gpu.energy_j() - energy == pytest.approx(gpu.power_w() * elapsed_s)
        assert gpu.clock_s() == clock + elapsed_s  # nothing passes between steps
        timeline = gpu.power_timeline_w(clock, gpu.clock_s())
        assert timeline and timeline[-1][1] == pytest.approx(gpu.power_w())


class CPUContract:
    """Behaviour every `zeus.device.CPU` implementation must have."""

    def advance(self) -> None:
        time.sleep(0.02)

    def test_is_a_cpu(self, cpu: CPU) -> None:
        assert isinstance(cpu, CPU)
        assert isinstance(cpu.index, int)

    def test_energy_is_monotonic(self, cpu: CPU) -> None:
        first = cpu.energy()
        assert isinstance(first, CPUEnergy)
        self.advance()
        second = cpu.energy()
        assert second.package_j >= first.package_j
        assert (first.dram_j is None) == (not cpu.has_dram)
        if cpu.has_dram:
            assert first.dram_j is not None and second.dram_j is not None
            assert second.dram_j >= first.dram_j
