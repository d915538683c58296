"""RAPL backend on a fake powercap tree: contract, layout, wraparound, unreadable files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.device.contract import CPUContract
from tests.device.fake_sysfs import add_uj, make_rapl, make_zone
from zeus.device.rapl import RaplCPU, rapl_cpus
from zeus.errors import ZeusDeviceError, ZeusPermissionError


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
    (cpu,) = rapl_cpus(tmp_path)
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
    (cpu,) = rapl_cpus(tmp_path)
    (zone / "energy_uj").write_text("n/a\n")
    with pytest.raises(ZeusDeviceError, match="expected a whole number of microjoules"):
        cpu.energy()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of their mode")
def test_permission_denied_says_how_to_fix(tmp_path: Path) -> None:
    zone = make_zone(tmp_path / "intel-rapl:0", "package-0", 1)
    (zone / "energy_uj").chmod(0)
    with pytest.raises(ZeusPermissionError, match="chmod o\\+r"):
        rapl_cpus(tmp_path)
