"""Build a fake powercap sysfs tree under a temporary directory."""

from __future__ import annotations

from pathlib import Path


def make_zone(path: Path, name: str, energy_uj: int, range_uj: int = 262_143_328_850) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{range_uj}\n")
    return path


def make_rapl(root: Path, sockets: int = 2, dram: bool = True, psys: bool = True) -> Path:
    """``intel-rapl:<N>`` packages (with ``core`` and optional ``dram`` subzones) and a psys zone."""
    for n in range(sockets):
        pkg = make_zone(root / f"intel-rapl:{n}", f"package-{n}", 1_000_000 * (n + 1))
        make_zone(pkg / f"intel-rapl:{n}:0", "core", 5)
        if dram:
            make_zone(pkg / f"intel-rapl:{n}:1", "dram", 300_000 * (n + 1))
    if psys:
        make_zone(root / f"intel-rapl:{sockets}", "psys", 7)
    return root


def add_uj(zone: Path, delta_uj: int) -> None:
    counter = zone / "energy_uj"
    counter.write_text(f"{int(counter.read_text()) + delta_uj}\n")
