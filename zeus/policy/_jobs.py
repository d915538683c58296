"""JSON form of `zeus.job.Job`, for the ``state_dict()`` of policies keyed by job."""

from __future__ import annotations

import dataclasses
from typing import Any

from zeus.errors import ZeusConfigError
from zeus.job import Job


def job_to_dict(job: Job) -> dict[str, Any]:
    data = dataclasses.asdict(job)
    if data["command"] is not None:
        data["command"] = list(data["command"])
    return data


def job_from_dict(data: dict[str, Any]) -> Job:
    try:
        fields = dict(data)
        if fields.get("command") is not None:
            fields["command"] = tuple(fields["command"])
        return Job(**fields)
    except TypeError as e:
        raise ZeusConfigError(f"malformed job in policy state: {e}") from e
