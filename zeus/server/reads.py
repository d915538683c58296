"""Read-only queries behind `GET /jobs`, `GET /jobs/{job_id}` and the database gauges of /metrics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
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
            JOBS.c.policy,
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
        policy=row.policy,
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
        spec=JobSpecFromClient.model_validate_json(row.spec_json).model_copy(
            update={"policy": row.policy}  # stored apart from the spec
        ),
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


def counts(conn: Connection) -> dict[str, Sequence[Any]]:
    """Jobs per stage, trials per status, and each job's lowest cost with its batch size, for
    /metrics."""
    jobs = conn.execute(select(JOBS.c.stage, func.count()).group_by(JOBS.c.stage)).all()
    trials = conn.execute(select(TRIALS.c.status, func.count()).group_by(TRIALS.c.status)).all()
    best = conn.execute(select(JOBS.c.job_id, JOBS.c.min_cost, JOBS.c.min_cost_batch_size)).all()
    return {
        "jobs": [(str(s), int(n)) for s, n in jobs],
        "trials": [(str(s), int(n)) for s, n in trials],
        "best": [(str(j), c, b) for j, c, b in best],
    }


@dataclass(frozen=True)
class JobFigures:
    """What /metrics shows of one job: its latest finished trial and its energy saved."""

    job_id: str
    last_trial: Row | None
    """The latest trial that ended with a measurement (``trial_number``, ``batch_size``, ``cost``,
    ``energy_j``, ``time_s``, ``converged``); None before the first."""
    converged_trials: int
    default_energy_j: float | None
    """Mean energy of the job's converged trials at its default batch size; None before one."""
    energy_saved_j: float | None
    """``converged_trials * default_energy_j`` minus the energy of every ended trial (failed tries
    included: their recurrence ran again); None without ``default_energy_j``."""


def job_figures(conn: Connection) -> list[JobFigures]:
    """Per job, for /metrics: the latest finished trial and the energy saved against running every
    recurrence at the default batch size."""
    ended = (TRIALS.c.status != "running", TRIALS.c.energy_j.is_not(None))
    totals = conn.execute(
        select(
            TRIALS.c.job_id,
            TRIALS.c.batch_size,
            TRIALS.c.converged,
            func.count(),
            func.sum(TRIALS.c.energy_j),
        )
        .where(*ended)
        .group_by(TRIALS.c.job_id, TRIALS.c.batch_size, TRIALS.c.converged)
    ).all()
    latest = (
        select(TRIALS.c.job_id, func.max(TRIALS.c.trial_number).label("trial_number"))
        .where(*ended, TRIALS.c.cost.is_not(None))
        .group_by(TRIALS.c.job_id)
        .subquery()
    )
    last_trials = conn.execute(
        select(TRIALS).join(
            latest,
            (TRIALS.c.job_id == latest.c.job_id) & (TRIALS.c.trial_number == latest.c.trial_number),
        )
    ).all()
    by_job = {t.job_id: t for t in last_trials}
    rows_of: dict[str, list[Row]] = {}
    for row in totals:
        rows_of.setdefault(row[0], []).append(row)
    defaults = {
        job_id: int(json.loads(spec)["default_batch_size"])
        for job_id, spec in conn.execute(select(JOBS.c.job_id, JOBS.c.spec_json)).all()
    }
    figures = []
    for job_id, default_bs in defaults.items():
        rows = rows_of.get(job_id, [])
        spent_j = sum(float(r[4]) for r in rows)
        converged = sum(int(r[3]) for r in rows if r[2])
        at_default = [r for r in rows if r[2] and r[1] == default_bs]
        default_j = (
            sum(float(r[4]) for r in at_default) / sum(int(r[3]) for r in at_default)
            if at_default
            else None
        )
        figures.append(
            JobFigures(
                job_id=job_id,
                last_trial=by_job.get(job_id),
                converged_trials=converged,
                default_energy_j=default_j,
                energy_saved_j=None if default_j is None else converged * default_j - spent_j,
            )
        )
    return figures
