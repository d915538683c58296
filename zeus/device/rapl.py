"""CPU package and DRAM energy from Intel RAPL through the powercap sysfs (``/sys/class/powercap``).

Layout read: ``intel-rapl:<N>`` zones named ``package-<N>`` (one per socket), each with an
``energy_uj`` counter and ``max_energy_range_uj`` (where the counter wraps back to 0), and subzones
``intel-rapl:<N>:<M>`` of which the one named ``dram`` meters memory. The root is injectable so tests
run on a fake tree. Counters wrap (after minutes on a busy server, seconds on some AMD CPUs); from
the first ``energy()`` on, the process's `zeus.device.counters.CounterPoller` reads them a few times
per wrap period, so no wrap goes unseen however long a measurement window lasts. The wrap period is
``max_energy_range_uj`` over the zone's ``constraint_0_max_power_uw`` (or `ASSUMED_MAX_POWER_W` where
the zone does not say). A zone that disappears (CPU hot-unplug, the powercap driver unloaded) raises
`ZeusDeviceError` saying so; the poller stops reading it with one warning.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from zeus.device.base import CPUEnergy
from zeus.device.counters import CounterPoller, WrappingCounter, counter_poller
from zeus.errors import ZeusDeviceError, ZeusPermissionError

logger = logging.getLogger(__name__)

DEFAULT_ROOT = "/sys/class/powercap"
ASSUMED_MAX_POWER_W = 1000.0
"""Upper bound on one zone's power when sysfs gives none: errs towards polling too often."""


def _read_int(path: Path) -> int:
    try:
        text = path.read_text().strip()
    except FileNotFoundError as e:
        raise ZeusDeviceError(
            f"cannot read {path}: the RAPL zone is gone (CPU unplugged or the powercap driver "
            "unloaded); CPU energy is no longer measured there"
        ) from e
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


def _counter(zone: Path) -> WrappingCounter:
    """The zone's wrapping microjoule counter."""
    range_uj = _read_int(zone / "max_energy_range_uj")
    if range_uj <= 0:
        raise ZeusDeviceError(f"{zone / 'max_energy_range_uj'} must be > 0, got {range_uj}")
    max_power_w = ASSUMED_MAX_POWER_W
    limit = zone / "constraint_0_max_power_uw"
    if limit.exists():
        with contextlib.suppress(ZeusDeviceError):  # unreadable: keep the conservative bound
            max_power_w = _read_int(limit) / 1e6 or ASSUMED_MAX_POWER_W
    path = zone / "energy_uj"
    return WrappingCounter(
        f"RAPL zone {zone}",
        lambda: _read_int(path),
        wrap_raw=range_uj,
        joules_per_raw=1e-6,
        max_power_w=max_power_w,
    )


class RaplCPU:
    """One CPU package (socket) and its DRAM zone if present. Implements `zeus.device.CPU`."""

    def __init__(self, zone: Path, index: int, poller: CounterPoller | None = None) -> None:
        self.zone = zone
        self._index = index
        self._poller = poller if poller is not None else counter_poller()
        self._package = _counter(zone)
        self._dram: WrappingCounter | None = None
        for sub in sorted(zone.glob(f"{zone.name}:*")):
            if _zone_name(sub) == "dram":
                self._dram = _counter(sub)
        self._lock = threading.Lock()

    @property
    def index(self) -> int:
        return self._index

    @property
    def has_dram(self) -> bool:
        return self._dram is not None

    @property
    def counters(self) -> list[WrappingCounter]:
        """The package counter, then the DRAM counter if any."""
        return [self._package] + ([self._dram] if self._dram is not None else [])

    def energy(self) -> CPUEnergy:
        with self._lock:
            package_j = self._package.read_j()
            dram_j = self._dram.read_j() if self._dram is not None else None
        for counter in self.counters:  # measuring from now on: keep every wrap seen
            self._poller.register(counter)
        return CPUEnergy(package_j=package_j, dram_j=dram_j)

    def __repr__(self) -> str:
        return f"RaplCPU(index={self._index}, zone={str(self.zone)!r}, dram={self.has_dram})"


def _zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return ""


def rapl_cpus(
    root: str | Path = DEFAULT_ROOT, poller: CounterPoller | None = None
) -> list[RaplCPU]:
    """Every CPU package under ``root``, ordered by socket; [] when the machine exposes no RAPL.
    Their counters are kept unfolded by ``poller`` (default: the process's `counter_poller`).

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
    return [RaplCPU(zone, index, poller) for index, zone in sorted(packages)]
