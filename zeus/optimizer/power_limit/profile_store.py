"""Saved power-limit profiles, so a recurrence of a job with a known batch size skips profiling.

One JSON file per (GPU model, job, batch size) under the profile directory::

    {"version": 1, "gpu_model": "NVIDIA A40", "job": "resnet50", "batch_size": 256,
     "num_gpus": 1, "measurements": [{"power_limit_w": 300, "time_per_step_s": ...,
     "energy_per_step_j": ...}, ...]}

Measurements are per training step summed over the job's GPUs, so a profile taken with a different
number of GPUs is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeus.optimizer.power_limit.selectors import PowerLimitMeasurement

logger = logging.getLogger(__name__)

_VERSION = 1


@dataclass(frozen=True)
class ProfileKey:
    """What a saved profile must match to be reused."""

    gpu_model: str
    job: str
    batch_size: int | None
    num_gpus: int

    def file_name(self) -> str:
        batch = "any" if self.batch_size is None else str(self.batch_size)
        return f"{_slug(self.gpu_model)}+{_slug(self.job)}+bs{batch}.json"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unnamed"


def profile_file(directory: str | os.PathLike[str], key: ProfileKey) -> Path:
    return Path(directory) / key.file_name()


def load_profile(
    directory: str | os.PathLike[str], key: ProfileKey
) -> list[PowerLimitMeasurement] | None:
    """Measurements saved for ``key``, or None when there is no usable profile."""
    path = profile_file(directory, key)
    if not path.exists():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("version") != _VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {_VERSION}")
        found = (data["gpu_model"], data["job"], data["batch_size"], data["num_gpus"])
        expected = (key.gpu_model, key.job, key.batch_size, key.num_gpus)
        if found != expected:
            logger.info(
                "ignoring power-limit profile %s: made for %s, not %s", path, found, expected
            )
            return None
        measurements = [PowerLimitMeasurement.from_dict(m) for m in data["measurements"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring unreadable power-limit profile %s: %s", path, error)
        return None
    logger.info("reusing power-limit profile %s (%d limits)", path, len(measurements))
    return measurements


def save_profile(
    directory: str | os.PathLike[str],
    key: ProfileKey,
    measurements: list[PowerLimitMeasurement],
) -> Path:
    """Write (atomically) the measurements for ``key``; returns the file."""
    path = profile_file(directory, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": _VERSION,
        "gpu_model": key.gpu_model,
        "job": key.job,
        "batch_size": key.batch_size,
        "num_gpus": key.num_gpus,
        "measurements": [m.to_dict() for m in sorted(measurements, key=lambda m: -m.power_limit_w)],
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".profile-", suffix=".tmp")
    with os.fdopen(fd, "w") as file:
        json.dump(payload, file, indent=1)
    os.replace(tmp, path)
    logger.info("saved power-limit profile %s", path)
    return path
