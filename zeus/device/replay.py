"""A GPU that replays measured (power, step time) profiles, for machines without a GPU.

Profiles come from the data shipped in the package (see ``zeus/data/profiles/README.md``):

* ``zeus/data/profiles/<GPU>+<model>+gpu<ids>.csv``: real per-power-limit profiling windows. Named
  ``<gpu>-<model>`` (``a40-resnet50``), or ``<gpu>-<model>-x<n>`` for multi-GPU logs, which keep
  per-GPU power figures (replay GPU ``i`` uses the log's ``gpu<i>`` column).
* ``zeus/data/traces/summary_power_<gpu>.csv``: per (dataset, network, optimizer, batch size) epoch
  time and average power per limit. Named ``<gpu>-<dataset>-<network>-bs<N>``; where one (dataset,
  network) was run with several optimizers, the first listed is the default and every optimizer also
  gets ``<gpu>-<dataset>-<network>-<optimizer>-bs<N>``.

Between measured limits, power and relative step time are interpolated linearly.

The replay GPU keeps an energy counter that integrates the profile's average power at the current
limit over wall time, and ``synchronize()`` sleeps so that the wall time since the previous sync is
stretched by the relative step time of the current limit, as a GPU throttled to that limit would.
Its power-limit setting persists in a small state file, like a driver setting, so another process
(or the same one after a restart) sees it.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import logging
import os
import re
import tempfile
import threading
import time
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from zeus.device.base import GPUCapabilities
from zeus.errors import ZeusConfigError

logger = logging.getLogger(__name__)

_DEFAULT_STATE_DIR = Path("~/.cache/zeus/replay")


@dataclass(frozen=True)
class ReplayProfile:
    """Measured behaviour of one workload on one GPU model, per power limit (ascending)."""

    name: str
    gpu_model: str
    power_limits_w: tuple[int, ...]
    avg_power_w: tuple[float, ...]
    """Mean over GPUs of the average board power at each limit."""
    rel_step_time: tuple[float, ...]
    """Step (or epoch) time relative to the time at the maximum limit."""
    source: str
    per_gpu_avg_power_w: tuple[tuple[float, ...], ...] = ()
    """For multi-GPU logs: each GPU's own average power per limit."""

    def __post_init__(self) -> None:
        limits = self.power_limits_w
        if len(limits) < 2 or any(b <= a for a, b in itertools.pairwise(limits)):
            raise ZeusConfigError(
                f"replay profile {self.name!r}: power_limits_w must hold >= 2 ascending limits, "
                f"got {limits}"
            )
        series = [self.avg_power_w, self.rel_step_time, *self.per_gpu_avg_power_w]
        if any(len(values) != len(limits) for values in series):
            raise ZeusConfigError(
                f"replay profile {self.name!r}: avg_power_w, rel_step_time and per-GPU power need "
                f"one value per power limit ({len(limits)})"
            )
        if any(v <= 0 for values in series for v in values):
            raise ZeusConfigError(
                f"replay profile {self.name!r}: power and relative step time must be > 0"
            )

    @property
    def min_power_limit_w(self) -> int:
        return self.power_limits_w[0]

    @property
    def max_power_limit_w(self) -> int:
        return self.power_limits_w[-1]

    @property
    def default_power_limit_w(self) -> int:
        """Drivers default to the maximum (TDP) limit."""
        return self.power_limits_w[-1]

    @property
    def num_gpus(self) -> int:
        return max(1, len(self.per_gpu_avg_power_w))

    def power_at(self, limit_w: float, gpu: int = 0) -> float:
        """Average power at ``limit_w`` (interpolated) of GPU ``gpu`` of the profiled job."""
        series = self.per_gpu_avg_power_w[gpu % self.num_gpus] if self.per_gpu_avg_power_w else None
        return _interpolate(self.power_limits_w, series or self.avg_power_w, limit_w)

    def rel_step_time_at(self, limit_w: float) -> float:
        return _interpolate(self.power_limits_w, self.rel_step_time, limit_w)


def _interpolate(xs: tuple[int, ...], ys: tuple[float, ...], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect_right(xs, x) - 1
    frac = (x - xs[i]) / (xs[i + 1] - xs[i])
    return ys[i] + frac * (ys[i + 1] - ys[i])


# ---------------------------------------------------------------------------------------------------
# Loading profiles from package data


def _read_data(folder: str, filename: str) -> str:
    return resources.files("zeus.data").joinpath(folder).joinpath(filename).read_text()


def _data_files(folder: str) -> list[str]:
    return sorted(p.name for p in resources.files("zeus.data").joinpath(folder).iterdir())


_WINDOW_LIMIT = re.compile(r"(\d+)$")
_PROFILE_FILE = re.compile(r"^(?P<gpu>[^+]+)\+(?P<model>[^+]+)\+gpu(?P<ids>[\d,]+)\.csv$")


def _profile_from_window_log(name: str, gpu_model: str, filename: str) -> ReplayProfile:
    """Per-window log: avg power = energy / elapsed; rel step time = elapsed / elapsed at max."""
    rows = list(csv.DictReader(io.StringIO(_read_data("profiles", filename))))
    energy_columns = [c for c in rows[0] if c.startswith("gpu") and c.endswith("_energy")]
    by_limit: dict[int, tuple[float, list[float]]] = {}
    for row in rows:
        match = _WINDOW_LIMIT.search(row["window_name"])
        if match is None:
            raise ZeusConfigError(f"{filename}: window_name {row['window_name']!r} lacks a limit")
        elapsed_s = float(row["elapsed_time"])
        powers = [float(row[c]) / elapsed_s for c in energy_columns]
        by_limit[int(match.group(1))] = (elapsed_s, powers)
    limits = tuple(sorted(by_limit))
    base_s = by_limit[limits[-1]][0]
    per_gpu = tuple(
        tuple(by_limit[lim][1][g] for lim in limits) for g in range(len(energy_columns))
    )
    return ReplayProfile(
        name=name,
        gpu_model=gpu_model,
        power_limits_w=limits,
        avg_power_w=tuple(sum(by_limit[lim][1]) / len(energy_columns) for lim in limits),
        rel_step_time=tuple(by_limit[lim][0] / base_s for lim in limits),
        source=f"zeus/data/profiles/{filename}",
        per_gpu_avg_power_w=per_gpu if len(energy_columns) > 1 else (),
    )


def _window_log_profiles() -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for filename in _data_files("profiles"):
        match = _PROFILE_FILE.match(filename)
        if match is None:
            continue
        n = len(match["ids"].split(","))
        name = f"{match['gpu'].lower()}-{match['model'].lower()}" + (f"-x{n}" if n > 1 else "")
        found[name] = (match["gpu"].upper(), filename)
    return found


def _trace_rows() -> dict[str, tuple[str, list[dict[str, str]]]]:
    """Group the power-trace rows by profile name."""
    groups: dict[str, tuple[str, list[dict[str, str]]]] = {}
    for filename in _data_files("traces"):
        match = re.fullmatch(r"summary_power_(\w+)\.csv", filename)
        if match is None:
            continue
        gpu = match.group(1)
        rows = list(csv.DictReader(io.StringIO(_read_data("traces", filename))))
        optimizers: dict[tuple[str, str], list[str]] = defaultdict(list)
        for row in rows:
            seen = optimizers[(row["dataset"], row["network"])]
            if row["optimizer"] not in seen:
                seen.append(row["optimizer"])
        for row in rows:
            key = (row["dataset"], row["network"])
            base = f"{gpu}-{row['dataset']}-{row['network']}".lower().replace("_", "-")
            names = []
            if row["optimizer"] == optimizers[key][0]:
                names.append(f"{base}-bs{row['batch_size']}")
            if len(optimizers[key]) > 1:  # the optimizer suffix only where it disambiguates
                names.append(f"{base}-{row['optimizer'].lower()}-bs{row['batch_size']}")
            for name in names:
                groups.setdefault(name, (gpu.upper(), []))[1].append(row)
    return groups


def _profile_from_trace(name: str, gpu_model: str, rows: list[dict[str, str]]) -> ReplayProfile:
    by_limit = {
        int(r["power_limit"]): (float(r["time_per_epoch"]), float(r["average_power"])) for r in rows
    }
    limits = tuple(sorted(by_limit))
    base_s = by_limit[limits[-1]][0]
    return ReplayProfile(
        name=name,
        gpu_model=gpu_model,
        power_limits_w=limits,
        avg_power_w=tuple(by_limit[lim][1] for lim in limits),
        rel_step_time=tuple(by_limit[lim][0] / base_s for lim in limits),
        source="zeus/data/traces/summary_power_" + gpu_model.lower() + ".csv",
    )


@functools.cache
def _catalog() -> dict[str, ReplayProfile]:
    profiles: dict[str, ReplayProfile] = {}
    for name, (gpu, filename) in _window_log_profiles().items():
        profiles[name] = _profile_from_window_log(name, gpu, filename)
    for name, (gpu, rows) in _trace_rows().items():
        if len({r["power_limit"] for r in rows}) >= 2:
            profiles[name] = _profile_from_trace(name, gpu, rows)
    return profiles


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def list_profiles() -> list[str]:
    """Names of every shipped replay profile, sorted."""
    return sorted(_catalog())


def load_profile(name: str) -> ReplayProfile:
    """The shipped profile called ``name`` (case-insensitive; ``_`` and ``-`` are interchangeable)."""
    catalog = _catalog()
    wanted = _normalise(name)
    for candidate, profile in catalog.items():
        if _normalise(candidate) == wanted:
            return profile
    examples = ", ".join(n for n in list_profiles() if "-bs" not in n)
    raise ZeusConfigError(
        f"replay profile {name!r} does not exist; allowed: {examples}, or "
        f"'<gpu>-<dataset>-<network>-bs<N>' from the power traces (`zeus show-env --profiles` lists all)"
    )


# ---------------------------------------------------------------------------------------------------
# The replay GPU


def replay_state_dir(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where replay GPUs keep their power-limit setting: argument, ``ZEUS_STATE_DIR``, or ~/.cache."""
    if state_dir is not None:
        return Path(state_dir)
    env = os.environ.get("ZEUS_STATE_DIR")
    return Path(env) if env else _DEFAULT_STATE_DIR.expanduser()


class ReplayGPU:
    """A GPU whose power, energy and speed follow a measured profile. Implements `zeus.device.GPU`."""

    def __init__(
        self,
        profile: ReplayProfile | str,
        index: int = 0,
        state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self._index = index
        self._state_file = replay_state_dir(state_dir) / f"{self.profile.name}-gpu{index}.json"
        self._state_path = str(self._state_file)  # os.stat on a str is the cheapest check
        self._lock = threading.Lock()
        self._state_mtime_ns = -1
        self._limit_w = self.profile.default_power_limit_w
        self._energy_j = 0.0
        self._energy_at_s = time.monotonic()
        self._last_sync_s: float | None = None
        self._owed_s = 0.0  # stretch still owed (< 0: overslept) at the current limit
        self._refresh_limit()

    # -- identity and capabilities ---------------------------------------------------------------

    @property
    def index(self) -> int:
        return self._index

    @property
    def name(self) -> str:
        return f"NVIDIA {self.profile.gpu_model} (replay)"

    @property
    def capabilities(self) -> GPUCapabilities:
        return GPUCapabilities(energy_counter=True, set_power_limit=True)

    @property
    def min_power_limit_w(self) -> int:
        return self.profile.min_power_limit_w

    @property
    def max_power_limit_w(self) -> int:
        return self.profile.max_power_limit_w

    @property
    def default_power_limit_w(self) -> int:
        return self.profile.default_power_limit_w

    @property
    def state_file(self) -> Path:
        return self._state_file

    def __repr__(self) -> str:
        return f"ReplayGPU({self.profile.name!r}, index={self._index})"

    # -- power limit (persisted like a driver setting) ---------------------------------------------

    def get_power_limit_w(self) -> int:
        with self._lock:
            self._refresh_limit()
            return self._limit_w

    def set_power_limit_w(self, watts: int) -> None:
        if watts != watts or int(watts) != watts:
            raise ZeusConfigError(f"power limit must be a whole number of watts, got {watts!r}")
        lo, hi = self.min_power_limit_w, self.max_power_limit_w
        if not lo <= watts <= hi:
            raise ZeusConfigError(
                f"power limit {watts} W is outside the range of {self.name} GPU {self._index}: "
                f"allowed {lo}..{hi} W"
            )
        with self._lock:
            self._refresh_limit()
            self._advance_energy(time.monotonic())
            self._limit_w = int(watts)
            self._owed_s = 0.0
            self._write_state()
            logger.debug(
                "replay GPU %d (%s): power limit %d W", self._index, self.profile.name, watts
            )

    def reset_power_limit(self) -> None:
        self.set_power_limit_w(self.default_power_limit_w)

    def _refresh_limit(self) -> None:
        """Pick up a limit set by another process (cheap: one stat when nothing changed)."""
        try:
            mtime_ns = os.stat(self._state_path).st_mtime_ns
        except FileNotFoundError:
            if self._state_mtime_ns != -1:  # state deleted: back to the default, like a reset
                self._state_mtime_ns = -1
                self._advance_energy(time.monotonic())
                self._limit_w = self.profile.default_power_limit_w
                self._owed_s = 0.0
            return
        if mtime_ns == self._state_mtime_ns:
            return
        try:
            limit = int(json.loads(self._state_file.read_text())["power_limit_w"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("ignoring unreadable replay state file %s: %s", self._state_file, e)
            return
        self._state_mtime_ns = mtime_ns
        if limit != self._limit_w and self.min_power_limit_w <= limit <= self.max_power_limit_w:
            self._advance_energy(time.monotonic())
            self._limit_w = limit
            self._owed_s = 0.0

    def _write_state(self) -> None:
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"profile": self.profile.name, "power_limit_w": self._limit_w})
        fd, tmp = tempfile.mkstemp(dir=self._state_file.parent, prefix=".replay-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(payload)
        os.replace(tmp, self._state_file)  # atomic: readers see the old or the new file
        self._state_mtime_ns = self._state_file.stat().st_mtime_ns

    # -- power and energy -------------------------------------------------------------------------

    def power_w(self) -> float:
        with self._lock:
            self._refresh_limit()
            return self.profile.power_at(self._limit_w, self._index)

    def energy_j(self) -> float:
        return self.stamped_energy_j()[0]

    def stamped_energy_j(self) -> tuple[float, float]:
        """The energy counter and the ``time.monotonic()`` instant it refers to."""
        with self._lock:
            self._refresh_limit()
            now_s = time.monotonic()
            self._advance_energy(now_s)
            return self._energy_j, now_s

    def _advance_energy(self, now_s: float) -> None:
        self._energy_j += self.profile.power_at(self._limit_w, self._index) * (
            now_s - self._energy_at_s
        )
        self._energy_at_s = now_s

    def rel_step_time(self) -> float:
        """Slowdown of the current limit relative to the maximum limit."""
        with self._lock:
            self._refresh_limit()
            return self.profile.rel_step_time_at(self._limit_w)

    def synchronize(self) -> None:
        """Stretch the wall time since the previous sync by the current limit's relative step time.

        The first call only starts the clock, so time spent before the first sync (imports, data
        loading) is not counted as GPU work. Limits faster than the maximum limit do not shrink time.
        ``time.sleep`` overshoots by tens of µs; the overshoot is paid back at the next sync, so over
        many steps the slowdown matches the profile even for short steps.
        """
        now_s = time.monotonic()
        with self._lock:
            self._refresh_limit()
            rel = self.profile.rel_step_time_at(self._limit_w)
            previous = self._last_sync_s
        if previous is not None and rel > 1.0:
            owed_s = (now_s - previous) * (rel - 1.0) + self._owed_s
            if owed_s > 0:
                time.sleep(owed_s)
                slept_until_s = time.monotonic()
                owed_s -= slept_until_s - now_s  # negative: overslept, sleep less next time
                now_s = slept_until_s
            self._owed_s = owed_s
        self._last_sync_s = now_s
