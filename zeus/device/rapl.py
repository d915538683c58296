"""CPU package and DRAM energy from Intel RAPL through the powercap sysfs (``/sys/class/powercap``).

Layout read: ``intel-rapl:<N>`` zones named ``package-<N>`` (one per socket), each with an
``energy_uj`` counter and ``max_energy_range_uj`` (where the counter wraps back to 0), and subzones
``intel-rapl:<N>:<M>`` of which the one named ``dram`` meters memory. The root is injectable so tests
run on a fake tree. Counters wrap; each CPU keeps its last reading and unfolds the wraps, so
``energy()`` is monotonic as long as it is read more often than once per wrap period (minutes to
hours depending on the CPU).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from zeus.device.base import CPUEnergy
from zeus.errors import ZeusDeviceError, ZeusPermissionError

logger = logging.getLogger(__name__)

DEFAULT_ROOT = "/sys/class/powercap"


def _read_int(path: Path) -> int:
    try:
        text = path.read_text().strip()
    except PermissionError as e:
        raise ZeusPermissionError(
            f"cannot read {path}: permission denied (RAPL counters are root-only on many kernels; "
            f"allow reading with `sudo chmod o+r {path}` or run as root)"
        ) from e
    except OSError as e:
        raise ZeusDeviceError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        return int(text)
    except ValueError:
        raise ZeusDeviceError(
            f"cannot parse {path}: expected a whole number of microjoules, got {text[:40]!r}"
        ) from None


class _Counter:
    """One wrapping microjoule counter, unfolded into a monotonic total."""

    def __init__(self, zone: Path) -> None:
        self.path = zone / "energy_uj"
        self.range_uj = _read_int(zone / "max_energy_range_uj")
        if self.range_uj <= 0:
            raise ZeusDeviceError(
                f"{zone / 'max_energy_range_uj'} must be > 0, got {self.range_uj}"
            )
        self._last_uj = _read_int(self.path)
        self._wraps = 0

    def read_j(self) -> float:
        raw_uj = _read_int(self.path)
        if raw_uj < self._last_uj:
            self._wraps += 1
        self._last_uj = raw_uj
        return (self._wraps * self.range_uj + raw_uj) / 1e6


class RaplCPU:
    """One CPU package (socket) and its DRAM zone if present. Implements `zeus.device.CPU`."""

    def __init__(self, zone: Path, index: int) -> None:
        self.zone = zone
        self._index = index
        self._package = _Counter(zone)
        self._dram: _Counter | None = None
        for sub in sorted(zone.glob(f"{zone.name}:*")):
            if _zone_name(sub) == "dram":
                self._dram = _Counter(sub)
        self._lock = threading.Lock()

    @property
    def index(self) -> int:
        return self._index

    @property
    def has_dram(self) -> bool:
        return self._dram is not None

    def energy(self) -> CPUEnergy:
        with self._lock:
            package_j = self._package.read_j()
            dram_j = self._dram.read_j() if self._dram is not None else None
        return CPUEnergy(package_j=package_j, dram_j=dram_j)

    def __repr__(self) -> str:
        return f"RaplCPU(index={self._index}, zone={str(self.zone)!r}, dram={self.has_dram})"


def _zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return ""


def rapl_cpus(root: str | Path = DEFAULT_ROOT) -> list[RaplCPU]:
    """Every CPU package under ``root``, ordered by socket; [] when the machine exposes no RAPL.

    Raises ``ZeusPermissionError``/``ZeusDeviceError`` naming the file when a counter exists but
    cannot be read.
    """
    root = Path(root)
    packages: list[tuple[int, Path]] = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:
            continue  # a subzone listed at top level (some kernels link them)
        name = _zone_name(zone)
        if not name.startswith("package-"):
            continue  # psys and other non-socket zones
        suffix = name.removeprefix("package-")
        packages.append((int(suffix) if suffix.isdigit() else len(packages), zone))
    return [RaplCPU(zone, index) for index, zone in sorted(packages)]
