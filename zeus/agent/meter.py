"""What the agent's metrics show: each GPU's power, limits and energy, and the energy of each lease.

The `Meter` samples every GPU every ``metrics_interval_s`` (`zeus.agent.metrics` runs it) and is told
by the lease book when a lease begins or ends and when a limit changes. Energy comes from the GPU's
counter where it has one, else from its power integrated between readings. Each reading's energy goes
to the lease that holds the GPU at that moment; the counter is read again at every lease edge, so a
lease gets exactly the energy drawn while it held the GPU, whatever the sampling interval.

Counters never go backwards. A device counter that drops (a wrap the backend did not unfold, a
driver reload, a replay device that starts again from zero in a new agent process) is taken to have
restarted from zero. The totals are saved to ``<state_dir>/energy.json`` (atomically, beside the lease
journal) after every sample and *before* the sample is shown, so a restarted agent, killed or not,
starts from totals at least as large as any Prometheus has seen. Energy drawn while the agent was
down goes to the lease that held the GPU when the device counter kept counting; when the counter
restarted meanwhile (a reboot), what it counted since goes to the GPU's total only, and what was drawn
before is unknown.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from zeus.agent.devices import Devices
from zeus.agent.journal import write_atomically
from zeus.device.base import GPU
from zeus.errors import ZeusError

if TYPE_CHECKING:
    from zeus.agent.leases import Lease

logger = logging.getLogger(__name__)

STATE_VERSION = 1
ENDED_LEASE_SHOWN_S = 300.0
"""An ended lease's final energy stays on /metrics this long, so that every scrape sees it."""
LIMIT_EVENTS = ("set", "reset", "restore")


class LeaseObserver(Protocol):
    """What the lease book tells the meter (`NullObserver` when metrics are off)."""

    def resume(self, leases: Iterable[Lease]) -> None: ...
    def lease_began(self, lease: Lease, uuids: Iterable[str]) -> None: ...
    def lease_ended(self, lease: Lease) -> None: ...
    def limit_changed(self, uuid: str, event: str) -> None: ...


class NullObserver:
    def resume(self, leases: Iterable[Lease]) -> None:
        pass

    def lease_began(self, lease: Lease, uuids: Iterable[str]) -> None:
        pass

    def lease_ended(self, lease: Lease) -> None:
        pass

    def limit_changed(self, uuid: str, event: str) -> None:
        pass


@dataclass(frozen=True)
class GPUReading:
    """One GPU at one sample."""

    index: int
    uuid: str
    name: str
    simulated: bool
    power_w: float
    limit_w: int
    default_limit_w: int
    energy_j: float
    """Everything the GPU drew since the agent first saw it (all leases and idle time)."""
    changes: dict[str, int]
    """Limit changes by event: ``set``, ``reset`` (by a lease holder), ``restore`` (by the agent)."""


@dataclass(frozen=True)
class LeaseReading:
    """The energy of one lease on one GPU, at one sample."""

    lease: str
    job_id: str
    index: int
    uuid: str
    energy_j: float
    live: bool


@dataclass(frozen=True)
class Snapshot:
    """What one sample shows; ``state`` is what is saved before it is shown."""

    gpus: tuple[GPUReading, ...]
    leases: tuple[LeaseReading, ...]
    state: dict[str, Any]
    number: int
    """Samples are numbered: an older one is never saved over a newer one."""


@dataclass
class _GPUAccount:
    total_j: float = 0.0
    raw_j: float | None = None
    """The last reading of the device's energy counter."""
    power_w: float | None = None
    read_at_s: float | None = None
    """Monotonic time of the last power reading (GPUs without a counter integrate power)."""
    holder: str | None = None
    """The lease that holds the GPU now."""
    changes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LIMIT_EVENTS, 0))
    failing: bool = False


@dataclass
class _LeaseAccount:
    job_id: str
    energy_j: dict[str, float]
    ended_at_s: float | None = None


class Meter:
    """Energy per GPU and per lease, limits and power, for `zeus.agent.metrics`. All calls come
    from the agent's event loop thread, like every device call."""

    def __init__(
        self, devices: Devices, state_path: Path, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.devices = devices
        self.state_path = state_path
        self.clock = clock
        self.accounts = {gpu.uuid: _GPUAccount() for gpu in devices.gpus}
        self.leases: dict[str, _LeaseAccount] = {}
        self.shown: Snapshot | None = None
        self._saved = self._load()
        self._last_saved: dict[str, Any] | None = None
        self._samples = 0
        self._saved_number = 0
        self._save_lock = threading.Lock()

    # -- the lease book's events ---------------------------------------------------------------------

    def resume(self, leases: Iterable[Lease]) -> None:
        """At start: the journal's leases hold their GPUs again; what their GPUs drew while the
        agent was down is theirs when the device kept counting."""
        saved_leases = self._saved.get("leases", {})
        for lease in leases:
            saved = saved_leases.get(lease.id, {}).get("energy_j", {})
            self.leases[lease.id] = _LeaseAccount(
                lease.job_id, {uuid: float(saved.get(uuid, 0.0)) for uuid in lease.original_w}
            )
            for uuid in lease.original_w:
                if uuid in self.accounts:
                    self.accounts[uuid].holder = lease.id
        for gpu in self.devices.gpus:
            self._read(gpu, resumed=True)

    def lease_began(self, lease: Lease, uuids: Iterable[str]) -> None:
        account = self.leases.setdefault(lease.id, _LeaseAccount(lease.job_id, {}))
        for uuid in uuids:
            self._read(self.devices.by_uuid[uuid])  # what was drawn so far is not this lease's
            account.energy_j.setdefault(uuid, 0.0)
            self.accounts[uuid].holder = lease.id

    def lease_ended(self, lease: Lease) -> None:
        account = self.leases.get(lease.id)
        for uuid in lease.original_w:
            gpu = self.devices.by_uuid.get(uuid)
            if gpu is not None:
                self._read(gpu)  # the lease's last joules
                if self.accounts[uuid].holder == lease.id:
                    self.accounts[uuid].holder = None
        if account is not None:
            account.ended_at_s = self.clock()

    def limit_changed(self, uuid: str, event: str) -> None:
        if uuid in self.accounts:
            changes = self.accounts[uuid].changes
            changes[event] = changes.get(event, 0) + 1

    # -- sampling ------------------------------------------------------------------------------------

    def sample(self) -> Snapshot:
        """Read every GPU once; the snapshot to save (``state``), then to show."""
        gpus = []
        for gpu in self.devices.gpus:
            account = self.accounts[gpu.uuid]
            try:
                power_w = self._read(gpu)
                limit_w = gpu.get_power_limit_w()
            except (ZeusError, OSError) as e:
                if not account.failing:
                    logger.warning("metrics: cannot read %s: %s", self.devices.describe(gpu), e)
                account.failing = True
                continue
            account.failing = False
            gpus.append(
                GPUReading(
                    index=self.devices.index_of(gpu),
                    uuid=gpu.uuid,
                    name=gpu.name,
                    simulated=gpu.capabilities.simulated,
                    power_w=power_w,
                    limit_w=limit_w,
                    default_limit_w=gpu.default_power_limit_w,
                    energy_j=account.total_j,
                    changes=dict(account.changes),
                )
            )
        now_s = self.clock()
        for lease_id in [
            lease_id
            for lease_id, account in self.leases.items()
            if account.ended_at_s is not None and now_s - account.ended_at_s > ENDED_LEASE_SHOWN_S
        ]:
            del self.leases[lease_id]
        leases = tuple(
            LeaseReading(
                lease=lease_id,
                job_id=account.job_id,
                index=self.devices.index_of(self.devices.by_uuid[uuid]),
                uuid=uuid,
                energy_j=joules,
                live=account.ended_at_s is None,
            )
            for lease_id, account in self.leases.items()
            for uuid, joules in account.energy_j.items()
            if uuid in self.devices.by_uuid
        )
        self._samples += 1
        return Snapshot(tuple(gpus), leases, self._state(), self._samples)

    def save(self, snapshot: Snapshot) -> None:
        """Write the snapshot's totals to disk (atomically; not again when nothing changed, e.g.
        idle replay GPUs); then it may be shown. Thread-safe: the sampler saves off the loop, the
        last sample at shutdown on it."""
        with self._save_lock:
            if snapshot.number <= self._saved_number:
                return
            if snapshot.state != self._last_saved:
                write_atomically(self.state_path, json.dumps(snapshot.state))
                self._last_saved = snapshot.state
            self._saved_number = snapshot.number

    def show(self, snapshot: Snapshot) -> None:
        self.shown = snapshot

    # -- internals -----------------------------------------------------------------------------------

    def _read(self, gpu: GPU, resumed: bool = False) -> float:
        """Read ``gpu``'s energy (or power) and book what it drew since the last reading to its
        holder; its power now. ``resumed``: the last reading is the previous agent process's."""
        account = self.accounts[gpu.uuid]
        now_s = self.clock()
        power_w = gpu.power_w()
        to_holder = True
        if gpu.capabilities.energy_counter:
            raw_j = gpu.energy_j()
            last_j = account.raw_j
            restarted = last_j is not None and raw_j < last_j
            drawn_j = 0.0 if last_j is None else raw_j if restarted else raw_j - last_j
            to_holder = not (resumed and restarted)  # a reboot: not the holder's energy
            account.raw_j = raw_j
        else:  # no counter: the power read last time, held until now
            last_w, last_s = account.power_w, account.read_at_s
            drawn_j = 0.0 if last_w is None or last_s is None else last_w * (now_s - last_s)
        account.power_w, account.read_at_s = power_w, now_s
        account.total_j += drawn_j
        if to_holder and account.holder is not None and account.holder in self.leases:
            energy = self.leases[account.holder].energy_j
            energy[gpu.uuid] = energy.get(gpu.uuid, 0.0) + drawn_j
        return power_w

    def _state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "gpus": {
                uuid: {"total_j": a.total_j, "raw_j": a.raw_j, "changes": dict(a.changes)}
                for uuid, a in self.accounts.items()
            },
            "leases": {
                lease_id: {"job_id": a.job_id, "energy_j": dict(a.energy_j)}
                for lease_id, a in self.leases.items()
                if a.ended_at_s is None
            },
        }

    def _load(self) -> dict[str, Any]:
        """The totals saved by the previous agent process (none: start from zero)."""
        try:
            saved: dict[str, Any] = json.loads(self.state_path.read_text())
            if saved.get("version") != STATE_VERSION:
                raise ValueError(f"expected version {STATE_VERSION}")
            for uuid, values in saved["gpus"].items():
                if uuid in self.accounts:
                    account = self.accounts[uuid]
                    account.total_j = float(values["total_j"])
                    raw = values.get("raw_j")
                    account.raw_j = None if raw is None else float(raw)
                    for event, n in values.get("changes", {}).items():
                        account.changes[str(event)] = int(n)
            return saved
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            # Unlike the journal, nothing is at stake but counts: start again, say so.
            logger.warning(
                "metrics: ignoring unreadable %s (%s): energy counters start from zero",
                self.state_path,
                e,
            )
            return {}
