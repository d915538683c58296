"""Leases: which process may change which GPU, and the limit each GPU had before it did.

One lease per holder process (a pid with its start time), under one job id; it grows GPU by GPU as
the process asks for more. A GPU is in at most one lease. A lease ends when its holder releases it
or is found gone (exited, killed, OOM-killed); either way its GPUs go back to the limits they had
when they joined it. Every lease is journaled before the agent answers, so the original limits
survive the agent itself being killed.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from zeus.agent.access import Access
from zeus.agent.audit import AuditLog
from zeus.agent.devices import Devices, device_errors
from zeus.agent.errors import (
    DeviceFailure,
    Forbidden,
    InvalidRequest,
    LeaseConflict,
    NotLeased,
    UnknownLease,
)
from zeus.agent.journal import Journal
from zeus.agent.meter import LeaseObserver, NullObserver
from zeus.agent.peer import Peer, Process
from zeus.agent.restore import restore
from zeus.device.base import GPU

logger = logging.getLogger(__name__)


@dataclass
class Lease:
    id: str
    job_id: str
    holder: Process
    uid: int
    since: float
    """Unix time the lease began."""
    original_w: dict[str, int]
    """GPU UUID -> its power limit when it joined the lease: what ending the lease restores."""
    limits_w: dict[str, int] = field(default_factory=dict)
    """GPU UUID -> the last limit the holder set."""
    restore_failed: bool = False
    ending: str | None = None
    """Why the lease is ending, once it is (kept while a refused restore is retried)."""

    def audit_fields(self, uuid: str | None = None) -> dict[str, Any]:
        return {"uid": self.uid, "pid": self.holder.pid, "job_id": self.job_id, "gpu": uuid}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "pid": self.holder.pid,
            "start_ticks": self.holder.start_ticks,
            "uid": self.uid,
            "since": self.since,
            "original_w": self.original_w,
            "limits_w": self.limits_w,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lease:
        return cls(
            id=str(data["id"]),
            job_id=str(data["job_id"]),
            holder=Process(int(data["pid"]), int(data["start_ticks"])),
            uid=int(data["uid"]),
            since=float(data["since"]),
            original_w={str(k): int(v) for k, v in data["original_w"].items()},
            limits_w={str(k): int(v) for k, v in data.get("limits_w", {}).items()},
        )


class LeaseBook:
    """Every live lease, the rules for granting them, and ending them with a restore."""

    def __init__(
        self,
        devices: Devices,
        journal: Journal,
        audit: AuditLog,
        access: Access,
        observer: LeaseObserver | None = None,
    ) -> None:
        self.devices = devices
        self.journal = journal
        self.audit = audit
        self.access = access
        self.observer: LeaseObserver = observer or NullObserver()
        """Told of every lease edge and limit change (the metrics' `zeus.agent.meter.Meter`)."""
        self.leases: dict[str, Lease] = {}
        self._by_gpu: dict[str, Lease] = {}

    # -- reading -----------------------------------------------------------------------------------

    def lease_of(self, gpu: GPU) -> Lease | None:
        return self._by_gpu.get(gpu.uuid)

    def lease_held_by(self, process: Process | None) -> Lease | None:
        if process is None:
            return None
        return next((le for le in self.leases.values() if le.holder == process), None)

    def refusal(self, peer: Peer | None, gpu: GPU) -> str | None:
        """Why ``peer`` may not change ``gpu`` now (None: it may, leasing it first if need be)."""
        reason = self.access.refusal(peer)
        if reason is None and not gpu.capabilities.set_power_limit:
            reason = f"the agent itself may not change {self.devices.describe(gpu)}'s limit"
        lease = self.lease_of(gpu)
        if reason is None and lease is not None and peer is not None:
            reason = None if lease.holder == peer.process else self._held_by_other(gpu, lease)
        return reason

    # -- leases ------------------------------------------------------------------------------------

    def acquire(self, peer: Peer | None, refs: list[str], job_id: str) -> Lease:
        """Lease the GPUs ``refs`` (indices or UUIDs) to ``peer``'s process for job ``job_id``."""
        self._check_access(peer, "lease", job_id)
        assert peer is not None and peer.process is not None
        gpus = list({id(g): g for g in (self.devices.find(r) for r in refs)}.values())
        own = self.lease_held_by(peer.process)
        if own is not None and own.job_id != job_id:
            raise self._refused(
                LeaseConflict(
                    f"this process already holds lease {own.id} as job {own.job_id!r}: one "
                    "process leases for one job"
                ),
                peer,
                job_id,
            )
        for gpu in gpus:
            lease = self.lease_of(gpu)
            if lease is not None and lease is not own:
                raise self._refused(
                    LeaseConflict(self._held_by_other(gpu, lease)), peer, job_id, gpu.uuid
                )
        joining = [gpu for gpu in gpus if own is None or gpu.uuid not in own.original_w]
        original: dict[str, int] = {}
        for gpu in joining:
            with device_errors(f"reading {self.devices.describe(gpu)}'s limit"):
                original[gpu.uuid] = gpu.get_power_limit_w()
        lease = own or Lease(
            id=secrets.token_hex(8),
            job_id=job_id,
            holder=peer.process,
            uid=peer.uid,
            since=time.time(),
            original_w={},
        )
        self.observer.lease_began(lease, original)
        lease.original_w.update(original)
        self.leases[lease.id] = lease
        self._by_gpu.update({uuid: lease for uuid in original})
        self._save()  # the limits to restore are on disk before the holder can change them
        for uuid, limit_w in original.items():
            self.audit.record("lease", **lease.audit_fields(uuid), old_w=limit_w)
        if original:
            logger.info(
                "lease %s: job %r (%s) holds %s",
                lease.id,
                job_id,
                peer.describe(),
                ", ".join(original),
            )
        return lease

    def release(self, peer: Peer | None, lease_id: str) -> Lease:
        """End the caller's lease ``lease_id`` now, restoring its GPUs."""
        lease = self.leases.get(lease_id)
        if lease is None:
            raise UnknownLease(f"lease {lease_id!r} does not exist (it may have ended already)")
        if peer is None or lease.holder != peer.process:
            raise Forbidden(f"lease {lease_id} is held by job {lease.job_id!r}, not by you")
        if not self._end(lease, "released by its holder"):
            raise DeviceFailure(
                f"lease {lease_id}: the driver refused to restore a limit; the agent keeps retrying"
            )
        return lease

    def reap(self, why: str = "its holder is gone (exited or killed)") -> None:
        """End the leases whose holder no longer runs (and retry restores that failed)."""
        for lease in list(self.leases.values()):
            if lease.ending is not None or not lease.holder.alive():
                self._end(lease, f"{why}: pid {lease.holder.pid}")

    def recover(self) -> None:
        """At start: take the journal's leases back, and end those whose holder is gone."""
        for entry in self.journal.load():
            lease = Lease.from_dict(entry)
            self.leases[lease.id] = lease
            self._by_gpu.update({uuid: lease for uuid in lease.original_w})
        self.observer.resume(self.leases.values())
        self.reap("found in the journal after an agent restart; its holder is gone")
        for lease in self.leases.values():
            logger.info(
                "lease %s of job %r (pid %d) continues after the agent restart",
                lease.id,
                lease.job_id,
                lease.holder.pid,
            )

    # -- changes -----------------------------------------------------------------------------------

    def set_limit(self, peer: Peer | None, gpu: GPU, watts: int, event: str = "set") -> None:
        """Set ``gpu``'s limit for its lease holder. Writing the current limit back changes
        nothing and needs no lease (it is how a process checks that it may change limits)."""
        lo, hi = gpu.min_power_limit_w, gpu.max_power_limit_w
        if not lo <= watts <= hi:
            raise InvalidRequest(
                f"power limit {watts} W is outside the range of {gpu.name} "
                f"{self.devices.describe(gpu)}: allowed {lo}..{hi} W"
            )
        lease = self._lease_for_change(peer, gpu, event)
        with device_errors(f"setting {self.devices.describe(gpu)}'s limit"):
            old_w = gpu.get_power_limit_w()
            if lease is None:
                if watts == old_w:
                    return
                raise self._not_leased(gpu)
            if watts != old_w:
                gpu.set_power_limit_w(watts)
        if watts != old_w:
            lease.limits_w[gpu.uuid] = watts
            self._save()
            self.audit.record(event, **lease.audit_fields(gpu.uuid), old_w=old_w, new_w=watts)
            self.observer.limit_changed(gpu.uuid, event)

    def step(self, peer: Peer | None, gpu: GPU, batch_size: int | None, forward_only: bool) -> None:
        """Mark a training step on a virtual-time GPU, for its lease holder only."""
        if not gpu.capabilities.virtual_time:
            raise InvalidRequest(
                f"{self.devices.describe(gpu)} runs on wall time: its steps run on the hardware "
                "and are not marked"
            )
        if self._lease_for_change(peer, gpu, "step") is None:
            raise self._not_leased(gpu)
        with device_errors(f"marking a step on {self.devices.describe(gpu)}"):
            gpu.step(batch_size, forward_only=forward_only)

    # -- internals ---------------------------------------------------------------------------------

    def _lease_for_change(self, peer: Peer | None, gpu: GPU, what: str) -> Lease | None:
        """The caller's lease on ``gpu`` (None: no one's); refusals for everything else."""
        self._check_access(peer, what, None, gpu.uuid)
        assert peer is not None
        lease = self.lease_of(gpu)
        if lease is not None and lease.holder != peer.process:
            raise self._refused(
                LeaseConflict(self._held_by_other(gpu, lease)), peer, None, gpu.uuid
            )
        return lease

    def _check_access(
        self, peer: Peer | None, what: str, job_id: str | None, uuid: str | None = None
    ) -> None:
        reason = self.access.refusal(peer)
        if reason is not None:
            raise self._refused(Forbidden(f"{what}: {reason}"), peer, job_id, uuid)

    def _refused(
        self, error: Exception, peer: Peer | None, job_id: str | None, uuid: str | None = None
    ) -> Exception:
        self.audit.record(
            "refused",
            uid=None if peer is None else peer.uid,
            pid=None if peer is None else peer.pid,
            job_id=job_id,
            gpu=uuid,
            reason=str(error),
        )
        return error

    def _held_by_other(self, gpu: GPU, lease: Lease) -> str:
        return (
            f"{self.devices.describe(gpu)} is leased by job {lease.job_id!r} (pid "
            f"{lease.holder.pid}, uid {lease.uid}) since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(lease.since))}"
        )

    def _not_leased(self, gpu: GPU) -> NotLeased:
        """Not audited: a process that may lease hears this once, then leases (lazy leases)."""
        return NotLeased(
            f"{self.devices.describe(gpu)} is not leased by this process: lease it first "
            "(POST /leases)"
        )

    def _end(self, lease: Lease, reason: str) -> bool:
        reason = lease.ending = lease.ending or reason
        restored = restore(lease, self.devices, self.audit, reason, self.observer.limit_changed)
        if not restored:
            return False  # the watcher retries; the lease and its journal entry stay
        self.observer.lease_ended(lease)
        del self.leases[lease.id]
        for uuid in lease.original_w:
            if self._by_gpu.get(uuid) is lease:
                del self._by_gpu[uuid]
        self._save()
        self.audit.record("release", **lease.audit_fields(), reason=reason)
        logger.info("lease %s of job %r ended: %s", lease.id, lease.job_id, reason)
        return True

    def _save(self) -> None:
        self.journal.save([lease.to_dict() for lease in self.leases.values()])
