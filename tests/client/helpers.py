"""Small builders shared by the client tests."""

from __future__ import annotations

import uuid

from zeus.device import get_gpus
from zeus.monitor import ZeusMonitor
from zeus.optimizer.batch_size import JobSpec

PROFILE = "a40-resnet50"


def replay_monitor(num_gpus: int = 1, index: int = 0) -> ZeusMonitor:
    """A monitor of one replay A40 (out of ``num_gpus``), no CPU metering."""
    gpus = get_gpus(backend=f"replay:{PROFILE}:{num_gpus}")
    return ZeusMonitor(gpu_indices=[index], gpus=gpus, cpus=[], sync_execution_with="none")


def unique_job_id(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


_UNIQUE = "<unique>"


def spec(job_id: str | None = _UNIQUE, **overrides: object) -> JobSpec:
    """A test job; a fresh id by default, ``job_id=None`` takes env ZEUS_JOB_ID."""
    fields: dict[str, object] = {
        "job_id_prefix": "test",
        "job_id": unique_job_id() if job_id == _UNIQUE else job_id,
        "batch_sizes": (8, 16, 32, 64),
        "default_batch_size": 32,
        "target_metric": 0.9,
        "max_epochs": 5,
    }
    fields.update(overrides)
    return JobSpec(**fields)  # type: ignore[arg-type]
