"""Read-only queries behind `GET /jobs`, `GET /jobs/{job_id}` and the database gauges of /metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from zeus.optimizer.batch_size.schemas import JobDetail, JobSpecFromClient, JobSummary, TrialInfo
from zeus.server.errors import JobNotFound
from zeus.server.models import JOBS, TRIALS

Row = Any  # a result row: columns by attribute


def list_jobs(conn: Connection, limit: int, offset: int) -> list[JobSummary]:
    rows = conn.execute(
        select(
            JOBS.c.job_id,
            JOBS.c.stage,
            JOBS.c.num_trials,
            JOBS.c.min_cost,
            JOBS.c.min_cost_batch_size,
            JOBS.c.created_at,
        )
        .order_by(JOBS.c.created_at, JOBS.c.job_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return [_summary(row) for row in rows]


def _summary(row: Row) -> JobSummary:
    return JobSummary(
        job_id=row.job_id,
        stage=row.stage,
        num_trials=row.num_trials,
        min_cost=row.min_cost,
        min_cost_batch_size=row.min_cost_batch_size,
        created_at=row.created_at,
    )


def job_summary(conn: Connection, job_id: str) -> JobSummary:
    row = conn.execute(select(JOBS).where(JOBS.c.job_id == job_id)).first()
    if row is None:
        raise JobNotFound(f"unknown job_id {job_id!r}")
    return _summary(row)


def job_detail(conn: Connection, job_id: str, trials_after: int, trials_limit: int) -> JobDetail:
    """The job and one page of its trials: numbers above ``trials_after``, at most ``trials_limit``."""
    row = conn.execute(select(JOBS).where(JOBS.c.job_id == job_id)).first()
    if row is None:
        raise JobNotFound(f"unknown job_id {job_id!r}")
    trials = conn.execute(
        select(TRIALS)
        .where(TRIALS.c.job_id == job_id, TRIALS.c.trial_number > trials_after)
        .order_by(TRIALS.c.trial_number)
        .limit(trials_limit)
    ).all()
    return JobDetail(
        **_summary(row).model_dump(),
        spec=JobSpecFromClient.model_validate_json(row.spec_json),
        trials=[_trial_info(t) for t in trials],
    )


def _trial_info(t: Row) -> TrialInfo:
    return TrialInfo(
        trial_number=t.trial_number,
        batch_size=t.batch_size,
        status=t.status,
        exploration=t.exploration,
        started_at=t.started_at,
        updated_at=t.updated_at,
        lease_expires_at=t.lease_expires_at,
        current_epoch=t.current_epoch,
        time=t.time_s,
        energy=t.energy_j,
        cost=t.cost,
        converged=t.converged,
        message=t.message,
    )


def counts(conn: Connection) -> dict[str, Sequence[tuple[str, int]]]:
    """Jobs per stage and trials per status, for /metrics."""
    jobs = conn.execute(select(JOBS.c.stage, func.count()).group_by(JOBS.c.stage)).all()
    trials = conn.execute(select(TRIALS.c.status, func.count()).group_by(TRIALS.c.status)).all()
    return {
        "jobs": [(str(s), int(n)) for s, n in jobs],
        "trials": [(str(s), int(n)) for s, n in trials],
    }
