"""Put a lease's GPUs back at the limits they had when the lease began, and audit each one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from zeus.agent.audit import AuditLog
from zeus.agent.devices import Devices
from zeus.errors import ZeusError

if TYPE_CHECKING:
    from zeus.agent.leases import Lease

logger = logging.getLogger(__name__)


def restore(
    lease: Lease,
    devices: Devices,
    audit: AuditLog,
    reason: str,
    restored: Callable[[str, str], None] = lambda uuid, event: None,
) -> bool:
    """Restore every GPU of ``lease``; False if the driver refused one (the caller retries later).
    ``restored(uuid, "restore")`` is called for each limit put back."""
    done = True
    for uuid, original_w in lease.original_w.items():
        gpu = devices.by_uuid.get(uuid)
        fields = lease.audit_fields(uuid)
        if gpu is None:  # journaled GPU gone from the node: nothing left to restore
            audit.record("restore_failed", **fields, new_w=original_w, reason="GPU not on node")
            logger.error("lease %s: GPU %s is no longer on this node", lease.id, uuid)
            continue
        try:
            current_w = gpu.get_power_limit_w()
            if current_w != original_w:
                gpu.set_power_limit_w(original_w)
        except (ZeusError, OSError) as e:
            done = False
            if not lease.restore_failed:
                audit.record("restore_failed", **fields, new_w=original_w, reason=f"{reason}: {e}")
                logger.error(
                    "could not restore %s to %d W (%s): %s; retrying", uuid, original_w, reason, e
                )
            continue
        if current_w != original_w:
            audit.record("restore", **fields, old_w=current_w, new_w=original_w, reason=reason)
            restored(uuid, "restore")
            logger.info(
                "restored %s from %d W to %d W (job %s: %s)",
                uuid,
                current_w,
                original_w,
                lease.job_id,
                reason,
            )
    lease.restore_failed = not done
    return done
