"""A GPU that replays measured profiles on a virtual clock, for machines without a GPU.

The training really runs (on the CPU); the replay GPU accounts for the GPU work it stands for. Its
clock advances by the training steps marked on it (`ReplayGPU.step`, called by `ZeusMonitor.step`,
`GlobalPowerLimitOptimizer`, `ZeusDataLoader` and the framework callbacks): a step of ``b`` samples at
the current power limit lasts what the profile (`zeus.device.replay_profiles`) says it lasts for
batch size ``b`` at that limit, and draws the profile's power meanwhile. The energy counter
integrates that power over that time. Nothing depends on how long the CPU took, so replayed figures
are the same on an idle and on a loaded machine. An evaluation batch (``forward_only``) takes
`FORWARD_FRACTION` of a training step of the same size.

The power-limit setting persists in a small state file, like a driver setting, so another process
(or the same one after a restart) sees it. Within a process, every `ReplayGPU` of one profile, index
and state file is a handle on the same device: one clock, one counter.

``clock="wall"`` keeps the earlier real-time behaviour for measuring one's own code under a replayed
slowdown: energy integrates the profile's power over wall time and ``synchronize()`` sleeps so that
the time since the previous sync is stretched by the current limit's slowdown.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from bisect import bisect_right
from pathlib import Path
from typing import Literal

from zeus.device.base import GPUCapabilities, Thermals, check_power_limit
from zeus.device.replay_profiles import ReplayProfile, StepFigures, list_profiles, load_profile
from zeus.errors import NotSupportedError, ZeusConfigError

__all__ = ["FORWARD_FRACTION", "ReplayGPU", "list_profiles", "load_profile", "replay_state_dir"]

logger = logging.getLogger(__name__)

Clock = Literal["virtual", "wall"]

FORWARD_FRACTION = 1.0 / 3.0
"""An evaluation (forward-only) batch costs this fraction of a training step of the same size: the
backward pass costs about twice the forward pass."""

_DEFAULT_STATE_DIR = Path("~/.cache/zeus/replay")
_HISTORY_LIMIT = 100_000
"""Power change points kept per device for `ReplayGPU.power_timeline_w` (the oldest are dropped)."""


def replay_state_dir(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where replay GPUs keep their power-limit setting: argument, ``ZEUS_STATE_DIR``, or ~/.cache."""
    if state_dir is not None:
        return Path(state_dir)
    env = os.environ.get("ZEUS_STATE_DIR")
    return Path(env) if env else _DEFAULT_STATE_DIR.expanduser()


class _Device:
    """The state of one replay GPU in this process, shared by all its `ReplayGPU` handles."""

    def __init__(self, profile: ReplayProfile, index: int, state_file: Path, clock: Clock) -> None:
        self.profile = profile
        self.index = index
        self.state_file = state_file
        self.state_path = str(state_file)  # os.stat on a str is the cheapest check
        self.clock: Clock = clock
        self.lock = threading.Lock()
        self.state_mtime_ns = -1
        self.limit_w = profile.default_power_limit_w
        self.batch_size: int | None = None  # of the last step: what power_w() reports
        self.energy_j = 0.0
        self.clock_s = 0.0  # virtual seconds of work done
        self.steps = 0
        self.history: list[tuple[float, float]] = []  # (clock_s, power_w) where power changed
        self.warned: set[int] = set()
        self.figures: dict[tuple[int | None, int], StepFigures] = {}
        # wall clock only
        self.energy_at_s = time.monotonic()
        self.last_sync_s: float | None = None
        self.owed_s = 0.0  # stretch still owed (< 0: overslept) at the current limit
        self.refresh_limit()

    # -- the power limit, persisted like a driver setting -------------------------------------------

    def refresh_limit(self) -> None:
        """Pick up a limit set by another process (cheap: one stat when nothing changed)."""
        try:
            mtime_ns = os.stat(self.state_path).st_mtime_ns
        except FileNotFoundError:
            if self.state_mtime_ns != -1:  # state deleted: back to the default, like a reset
                self.state_mtime_ns = -1
                self.change_limit(self.profile.default_power_limit_w)
            return
        if mtime_ns == self.state_mtime_ns:
            return
        try:
            limit = int(json.loads(self.state_file.read_text())["power_limit_w"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("ignoring unreadable replay state file %s: %s", self.state_file, e)
            return
        self.state_mtime_ns = mtime_ns
        if self.profile.min_power_limit_w <= limit <= self.profile.max_power_limit_w:
            self.change_limit(limit)

    def change_limit(self, limit_w: int) -> None:
        if limit_w == self.limit_w:
            return
        if self.clock == "wall":
            self.advance_wall_energy()
            self.owed_s = 0.0
        self.limit_w = limit_w

    def write_limit(self, limit_w: int) -> None:
        self.change_limit(limit_w)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"profile": self.profile.name, "power_limit_w": limit_w})
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".replay-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(payload)
        os.replace(tmp, self.state_file)  # atomic: readers see the old or the new file
        self.state_mtime_ns = self.state_file.stat().st_mtime_ns

    # -- step figures ------------------------------------------------------------------------------

    def figures_at(self, batch_size: int | None) -> StepFigures:
        key = (batch_size, self.limit_w)
        figures = self.figures.get(key)
        if figures is None:
            figures = self.figures[key] = self.profile.at(batch_size, self.limit_w, self.index)
        return figures

    def explain(self, batch_size: int | None, figures: StepFigures) -> None:
        """Say once per batch size where figures that were not measured come from."""
        profile = self.profile
        key = -1 if batch_size is None else batch_size
        if key in self.warned or not profile.batch_sizes:
            return
        if batch_size is None:
            self.warned.add(key)
            logger.warning(
                "replay GPU %d (%s): steps marked without a batch size count as batch size %s "
                "(measured: %s); pass the batch size to get its own figures",
                self.index,
                profile.name,
                profile.reference_batch_size,
                ", ".join(map(str, profile.batch_sizes)),
            )
        elif figures.derived_from:
            self.warned.add(key)
            logger.warning(
                "replay GPU %d (%s) has no data for batch size %d (measured: %s): its step time "
                "and power are derived from batch size(s) %s (docs/replay-gpu.md)",
                self.index,
                profile.name,
                batch_size,
                ", ".join(map(str, profile.batch_sizes)),
                " and ".join(map(str, figures.derived_from)),
            )

    # -- virtual clock -----------------------------------------------------------------------------

    def step(self, batch_size: int | None, forward_only: bool) -> None:
        with self.lock:
            self.refresh_limit()
            self.batch_size = batch_size
            figures = self.figures_at(batch_size)
            self.explain(batch_size, figures)
            if self.clock == "wall":
                return
            duration_s = figures.step_time_s * (FORWARD_FRACTION if forward_only else 1.0)
            if not self.history or self.history[-1][1] != figures.power_w:
                self.history.append((self.clock_s, figures.power_w))
                if len(self.history) > _HISTORY_LIMIT:
                    del self.history[: len(self.history) - _HISTORY_LIMIT]
            self.clock_s += duration_s
            self.energy_j += figures.power_w * duration_s
            self.steps += 1

    def power_now(self) -> float:
        return self.figures_at(self.batch_size).power_w

    # -- wall clock (clock="wall") -------------------------------------------------------------------

    def advance_wall_energy(self) -> None:
        now_s = time.monotonic()
        self.energy_j += self.power_now() * (now_s - self.energy_at_s)
        self.energy_at_s = now_s

    def stretch(self) -> None:
        """Sleep so the wall time since the previous sync is stretched by the current slowdown.

        The first call only starts the clock. Limits measured faster than the maximum limit do not
        shrink time. ``time.sleep`` overshoots; the overshoot is paid back at the next sync.
        """
        now_s = time.monotonic()
        with self.lock:
            self.refresh_limit()
            at_limit = self.figures_at(self.batch_size).step_time_s
            at_max = self.profile.at(self.batch_size, self.profile.max_power_limit_w).step_time_s
            previous = self.last_sync_s
        slowdown = at_limit / at_max
        if previous is not None and slowdown > 1.0:
            owed_s = (now_s - previous) * (slowdown - 1.0) + self.owed_s
            if owed_s > 0:
                time.sleep(owed_s)
                slept_until_s = time.monotonic()
                owed_s -= slept_until_s - now_s  # negative: overslept, sleep less next time
                now_s = slept_until_s
            self.owed_s = owed_s
        self.last_sync_s = now_s


_devices: dict[tuple[str, str, int, Clock], _Device] = {}
_devices_lock = threading.Lock()


def _device(profile: ReplayProfile, index: int, state_file: Path, clock: Clock) -> _Device:
    key = (str(state_file), profile.name, index, clock)
    with _devices_lock:
        device = _devices.get(key)
        if device is None:
            device = _devices[key] = _Device(profile, index, state_file, clock)
        return device


class ReplayGPU:
    """A GPU whose speed, power and energy follow a measured profile. Implements `zeus.device.GPU`."""

    def __init__(
        self,
        profile: ReplayProfile | str,
        index: int = 0,
        state_dir: str | os.PathLike[str] | None = None,
        clock: Clock = "virtual",
    ) -> None:
        if clock not in ("virtual", "wall"):
            raise ZeusConfigError(f"clock must be 'virtual' or 'wall', got {clock!r}")
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self._index = index
        state_file = replay_state_dir(state_dir) / f"{self.profile.name}-gpu{index}.json"
        self._device = _device(self.profile, index, state_file, clock)

    # -- identity and capabilities ---------------------------------------------------------------

    @property
    def index(self) -> int:
        return self._index

    @property
    def name(self) -> str:
        return f"NVIDIA {self.profile.gpu_model} (replay)"

    @property
    def uuid(self) -> str:
        return f"replay-{self.profile.name}-{self._index}"

    @property
    def capabilities(self) -> GPUCapabilities:
        return GPUCapabilities(
            energy_counter=True,
            set_power_limit=True,
            virtual_time=self._device.clock == "virtual",
            simulated=True,
        )

    @property
    def board_id(self) -> str:
        """One replay device per state file (handles on the same device share it)."""
        return f"replay:{self._device.state_file}"

    @property
    def set_power_limit_denied_reason(self) -> str | None:
        return None  # a replay GPU's "driver setting" is a file this process may write

    def thermals(self) -> Thermals:
        raise NotSupportedError(f"{self!r}: the profiles hold no temperature or throttle reasons")

    @property
    def clock(self) -> Clock:
        return self._device.clock

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
        return self._device.state_file

    @property
    def steps(self) -> int:
        """Steps marked on this device in this process."""
        return self._device.steps

    def __repr__(self) -> str:
        return f"ReplayGPU({self.profile.name!r}, index={self._index}, clock={self.clock!r})"

    # -- power limit -------------------------------------------------------------------------------

    def get_power_limit_w(self) -> int:
        with self._device.lock:
            self._device.refresh_limit()
            return self._device.limit_w

    def set_power_limit_w(self, watts: int) -> None:
        if watts != watts or int(watts) != watts:
            raise ZeusConfigError(f"power limit must be a whole number of watts, got {watts!r}")
        check_power_limit(
            watts, self.min_power_limit_w, self.max_power_limit_w, f"{self.name} GPU {self._index}"
        )
        with self._device.lock:
            self._device.refresh_limit()
            self._device.write_limit(int(watts))
        logger.debug("replay GPU %d (%s): power limit %d W", self._index, self.profile.name, watts)

    def reset_power_limit(self) -> None:
        self.set_power_limit_w(self.default_power_limit_w)

    # -- work, time, power and energy --------------------------------------------------------------

    def step(self, batch_size: int | None = None, *, forward_only: bool = False) -> None:
        """One step of ``batch_size`` samples ran: advance the clock and the energy counter."""
        if batch_size is not None and batch_size < 1:
            raise ZeusConfigError(f"batch_size must be >= 1, got {batch_size}")
        self._device.step(batch_size, forward_only)

    def clock_s(self) -> float:
        """Virtual seconds of work done in this process (``clock="wall"``: ``time.monotonic()``)."""
        if self._device.clock == "wall":
            return time.monotonic()
        with self._device.lock:
            return self._device.clock_s

    def power_w(self) -> float:
        """The profile's power at the current limit, for the batch size of the last step."""
        with self._device.lock:
            self._device.refresh_limit()
            return self._device.power_now()

    def energy_j(self) -> float:
        with self._device.lock:
            self._device.refresh_limit()
            if self._device.clock == "wall":
                self._device.advance_wall_energy()
            return self._device.energy_j

    def power_timeline_w(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        """Power on the virtual clock: ``(time, W)`` where it changed in [start_s, end_s], starting
        with the power at ``start_s``. Time with no step marked draws nothing: it does not exist."""
        device = self._device
        if device.clock == "wall":
            raise NotSupportedError(
                f"{self!r}: a wall-clock replay GPU has no power timeline; sample power_w()"
            )
        with device.lock:
            history = list(device.history)
        if not history:
            return []
        times = [t for t, _ in history]
        first = max(bisect_right(times, start_s) - 1, 0)
        points = [(max(start_s, history[first][0]), history[first][1])]
        points += [p for p in history[first + 1 :] if p[0] <= end_s]
        return points

    def synchronize(self) -> None:
        """Nothing to wait for on the virtual clock; ``clock="wall"`` sleeps the slowdown."""
        if self._device.clock == "wall":
            self._device.stretch()


def open_gpus(arg: str, indices: list[int] | None) -> list[ReplayGPU]:
    """The ``replay:<profile>[:<n>][:wall]`` backend: ``n`` (default 1) replay GPUs of a profile."""
    from zeus.device import select_indices

    parts = arg.split(":")
    clock: Clock = "virtual"
    if len(parts) > 1 and parts[-1] == "wall":
        clock = "wall"
        parts.pop()
    usage = "'replay:<profile>[:<n>][:wall]' with n a whole number >= 1"
    if not parts[0] or len(parts) > 2:
        raise ZeusConfigError(f"GPU backend 'replay:{arg}': allowed {usage}")
    count = 1
    if len(parts) == 2:
        if not parts[1].isdigit() or int(parts[1]) < 1:
            raise ZeusConfigError(
                f"GPU backend 'replay:{arg}': replay count must be a whole number >= 1; "
                f"allowed {usage}"
            )
        count = int(parts[1])
    profile = load_profile(parts[0])
    wanted = select_indices(indices, count, f"replay:{arg}")
    return [ReplayGPU(profile, index=i, clock=clock) for i in wanted]
