"""RAPL backend on a fake powercap tree: contract, layout, wraparound, unreadable files."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.device.contract import CPUContract
from tests.device.fake_sysfs import add_uj, make_rapl, make_zone
from zeus.device.counters import CounterPoller
from zeus.device.rapl import RaplCPU, rapl_cpus
from zeus.errors import ZeusDeviceError, ZeusPermissionError


def _explicit() -> CounterPoller:
    """A poller without a thread: the test decides when time passes and when it polls."""
    return CounterPoller(background=False)


class TestRaplContract(CPUContract):
    @pytest.fixture
    def cpu(self, tmp_path: Path) -> RaplCPU:
        self.root = make_rapl(tmp_path / "powercap")
        return rapl_cpus(self.root)[0]

    def advance(self) -> None:
        add_uj(self.root / "intel-rapl:0", 2_000_000)
        add_uj(self.root / "intel-rapl:0" / "intel-rapl:0:1", 500_000)


class TestRaplWithoutDramContract(CPUContract):
    @pytest.fixture
    def cpu(self, tmp_path: Path) -> RaplCPU:
        self.root = make_rapl(tmp_path / "powercap", sockets=1, dram=False)
        return rapl_cpus(self.root)[0]

    def advance(self) -> None:
        add_uj(self.root / "intel-rapl:0", 1_000)


def test_packages_found_psys_skipped(tmp_path: Path) -> None:
    cpus = rapl_cpus(make_rapl(tmp_path))
    assert [c.index for c in cpus] == [0, 1]
    assert all(c.has_dram for c in cpus)
    reading = cpus[1].energy()
    assert reading.package_j == pytest.approx(2.0)
    assert reading.dram_j == pytest.approx(0.6)


def test_no_powercap_means_no_cpus(tmp_path: Path) -> None:
    assert rapl_cpus(tmp_path / "missing") == []


def test_deltas_in_joules(tmp_path: Path) -> None:
    root = make_rapl(tmp_path)
    (cpu, _) = rapl_cpus(root)
    before = cpu.energy()
    add_uj(root / "intel-rapl:0", 3_500_000)
    add_uj(root / "intel-rapl:0" / "intel-rapl:0:1", 250_000)
    after = cpu.energy()
    assert after.package_j - before.package_j == pytest.approx(3.5)
    assert after.dram_j is not None and before.dram_j is not None
    assert after.dram_j - before.dram_j == pytest.approx(0.25)


def test_wraparound_is_unfolded(tmp_path: Path) -> None:
    zone = make_zone(tmp_path / "intel-rapl:0", "package-0", 900, range_uj=1_000)
    (cpu,) = rapl_cpus(tmp_path, _explicit())
    first = cpu.energy().package_j
    (zone / "energy_uj").write_text("50\n")  # wrapped: 100 uJ to the top, then 50
    second = cpu.energy().package_j
    (zone / "energy_uj").write_text("10\n")  # wrapped again
    third = cpu.energy().package_j
    assert second - first == pytest.approx(150e-6)
    assert third - second == pytest.approx(960e-6)


def test_unreadable_counter_names_the_path(tmp_path: Path) -> None:
    zone = make_zone(tmp_path / "intel-rapl:0", "package-0", 1)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()  # reading a directory fails like a broken sysfs file
    with pytest.raises(ZeusDeviceError, match=str(zone / "energy_uj")):
        rapl_cpus(tmp_path)


def test_garbage_counter_names_the_path(tmp_path: Path) -> None:
    zone = make_zone(tmp_path / "intel-rapl:0", "package-0", 1)
    (cpu,) = rapl_cpus(tmp_path, _explicit())
    (zone / "energy_uj").write_text("n/a\n")
    with pytest.raises(ZeusDeviceError, match="expected a whole number of microjoules"):
        cpu.energy()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of their mode")
def test_permission_denied_says_how_to_fix(tmp_path: Path) -> None:
    zone = make_zone(tmp_path / "intel-rapl:0", "package-0", 1)
    (zone / "energy_uj").chmod(0)
    with pytest.raises(ZeusPermissionError, match="chmod o\\+r"):
        rapl_cpus(tmp_path)


# -- the poller: no wrap goes unseen however long the window ------------------------------------------

RANGE_UJ = 10_000_000  # 10 J: a counter that wraps every 0.1 s at its 100 W maximum


def _small_zone(root: Path) -> Path:
    zone = make_zone(root / "intel-rapl:0", "package-0", 0, range_uj=RANGE_UJ)
    (zone / "constraint_0_max_power_uw").write_text("100000000\n")  # 100 W
    return zone


def _burn(zone: Path, joules: float) -> None:
    """The package used ``joules``: the counter moves on, wrapping at its range."""
    counter = zone / "energy_uj"
    raw = (int(counter.read_text()) + round(joules * 1e6)) % RANGE_UJ
    counter.write_text(f"{raw}\n")


def test_wrap_period_and_poll_interval_come_from_sysfs(tmp_path: Path) -> None:
    root = make_rapl(tmp_path, sockets=1, dram=False)  # 262 kJ range, no max power file
    (cpu,) = rapl_cpus(root, _explicit())
    (counter,) = cpu.counters
    assert counter.wrap_period_s == pytest.approx(262_143.328850 / 1000)  # at 1000 W assumed
    (tmp_path / "b").mkdir()
    (small,) = rapl_cpus(_small_zone(tmp_path / "b").parent, _explicit())
    assert small.counters[0].wrap_period_s == pytest.approx(0.1)


def test_a_long_window_keeps_every_wrap(tmp_path: Path) -> None:
    """25 wraps inside one window: polls between the edges see each of them."""
    zone = _small_zone(tmp_path)
    poller = _explicit()
    (cpu,) = rapl_cpus(tmp_path, poller)
    start = cpu.energy().package_j
    assert poller.counters == cpu.counters  # measuring registered the counter
    for _ in range(100):  # 100 x 0.05 s (the poll interval) at 50 W: 2.5 J each
        _burn(zone, 2.5)
        poller.poll()
    assert cpu.energy().package_j - start == pytest.approx(250.0)
    assert cpu.counters[0].wraps == 25


def test_without_polls_the_same_window_undercounts(tmp_path: Path) -> None:
    """What the poller prevents: read at the edges only, 25 wraps look like at most one."""
    zone = _small_zone(tmp_path)
    (cpu,) = rapl_cpus(tmp_path, _explicit())
    start = cpu.energy().package_j
    for _ in range(100):
        _burn(zone, 2.5)
    assert cpu.energy().package_j - start < 10.0


def test_background_poller_runs_while_measuring_and_stops_after(tmp_path: Path) -> None:
    _small_zone(tmp_path)
    poller = CounterPoller()
    (cpu,) = rapl_cpus(tmp_path, poller)
    assert not poller.running  # listing CPUs starts nothing
    cpu.energy()
    assert poller.running and poller.interval_s == pytest.approx(0.05)
    deadline = time.monotonic() + 30
    while poller.polls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert poller.polls >= 3
    del cpu
    gc.collect()  # nothing measures any more: the thread ends
    while poller.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not poller.running


def test_zone_that_disappears_is_a_clear_error_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    zone = _small_zone(tmp_path)
    poller = _explicit()
    (cpu,) = rapl_cpus(tmp_path, poller)
    cpu.energy()
    shutil.rmtree(zone)
    with pytest.raises(ZeusDeviceError, match="RAPL zone is gone"):
        cpu.energy()
    with caplog.at_level(logging.WARNING, logger="zeus.device.counters"):
        poller.poll()  # no crash: the counter is dropped with one warning
    assert "stopped polling" in caplog.text and "RAPL zone is gone" in caplog.text
    assert poller.counters == []
    assert cpu.counters[0].failure is not None
