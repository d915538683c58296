"""What each endpoint does to the database, one function per operation, inside the caller's transaction.

Decisions come from the shared policy core (`zeus.policy.pruning_gts`); this module only stores its
state per job and calls it. Every operation on a job first locks the job row (PostgreSQL/MySQL; SQLite
holds the database write lock already), then expires overdue trial leases, then acts. SQLAlchemy Core,
not the ORM, keeps the hot paths to a handful of statements.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from zeus.cost import zeus_cost
from zeus.optimizer.batch_size.schemas import (
    MAX_MESSAGE_LEN,
    JobDetail,
    JobSpecFromClient,
    JobSummary,
    PredictResponse,
    ReportResponse,
    TrainingResult,
    TrialId,
    TrialInfo,
)
from zeus.optimizer.batch_size.server.errors import (
    JobInfeasible,
    JobNotFound,
    SpecConflict,
    UnknownJob,
    UnknownTrial,
)
from zeus.optimizer.batch_size.server.models import JOBS, TRIALS
from zeus.policy import pruning_gts
from zeus.policy.pruning_gts import NoFeasibleBatchSize, PruningGTSState

Row = Any  # a result row: columns by attribute

logger = logging.getLogger(__name__)

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
STAGE_INFEASIBLE = "infeasible"


@dataclass(frozen=True)
class Clock:
    """Time and lease length of one request (passed in so tests can move time)."""

    now: float
    lease_s: float


@dataclass
class LockedJob:
    """A job row locked for this transaction, with its decoded spec and policy state."""

    job_id: str
    spec: JobSpecFromClient
    state: PruningGTSState
    num_trials: int
    state_dirty: bool = False


def stage_of(state: PruningGTSState) -> str:
    return STAGE_INFEASIBLE if state.infeasible else state.stage


# ---------------------------------------------------------------------------------------- register


def register_job(conn: Connection, spec: JobSpecFromClient, clock: Clock) -> tuple[Any, bool]:
    """Create the job, or confirm an identical registration. Returns (spec echoed, created)."""
    if spec.job_id is None:
        spec = spec.model_copy(update={"job_id": f"{spec.job_id_prefix}-{secrets.token_hex(4)}"})
    assert spec.job_id is not None
    existing = conn.execute(
        select(JOBS.c.spec_json).where(JOBS.c.job_id == spec.job_id)
    ).scalar_one_or_none()
    if existing is not None:
        stored = JobSpecFromClient.model_validate_json(existing)
        if not stored.same_job_as(spec):
            raise SpecConflict(
                f"job {spec.job_id!r} is already registered with a different spec; "
                "register under a new job_id or delete the job first"
            )
        return stored, False
    state = pruning_gts.new_state(
        spec.batch_sizes,
        spec.default_batch_size,
        seed=spec.mab_seed,
        num_pruning_rounds=spec.num_pruning_rounds,
        window_size=spec.window_size,
        prior_mean=spec.mab_prior_mean,
        prior_precision=spec.mab_prior_precision,
        num_explorations=spec.mab_num_explorations,
    )
    conn.execute(
        insert(JOBS).values(
            job_id=spec.job_id,
            spec_json=spec.model_dump_json(),
            policy_state_json=state.to_json(),
            stage=stage_of(state),
            num_trials=0,
            created_at=clock.now,
            updated_at=clock.now,
        )
    )
    logger.info("registered job %s (batch sizes %s)", spec.job_id, spec.batch_sizes)
    return spec, True


# ------------------------------------------------------------------------------------ job locking


def _lock_job(conn: Connection, job_id: str, missing: type[Exception]) -> LockedJob:
    query = select(JOBS.c.spec_json, JOBS.c.policy_state_json, JOBS.c.num_trials).where(
        JOBS.c.job_id == job_id
    )
    row = conn.execute(query.with_for_update()).first()
    if row is None:
        raise missing(f"unknown job_id {job_id!r}; register it with POST /jobs first")
    return LockedJob(
        job_id=job_id,
        spec=JobSpecFromClient.model_validate_json(row.spec_json),
        state=PruningGTSState.from_json(row.policy_state_json),
        num_trials=row.num_trials,
    )


def _save_job(conn: Connection, job: LockedJob, clock: Clock) -> None:
    state = job.state
    conn.execute(
        update(JOBS)
        .where(JOBS.c.job_id == job.job_id)
        .values(
            policy_state_json=state.to_json(),
            stage=stage_of(state),
            num_trials=job.num_trials,
            min_cost=state.min_cost,
            min_cost_batch_size=state.min_cost_bs,
            updated_at=clock.now,
        )
    )


def _expire_leases(conn: Connection, job: LockedJob, clock: Clock) -> None:
    """Trials silent for longer than their lease are failed, and the policy learns it."""
    overdue = conn.execute(
        select(
            TRIALS.c.trial_number, TRIALS.c.batch_size, TRIALS.c.exploration, TRIALS.c.cost
        ).where(
            TRIALS.c.job_id == job.job_id,
            TRIALS.c.status == RUNNING,
            TRIALS.c.lease_expires_at < clock.now,
        )
    ).all()
    for trial in overdue:
        _abandon(conn, job, trial, "lease expired: no report in time", clock)


def _abandon(conn: Connection, job: LockedJob, trial: Row, why: str, clock: Clock) -> None:
    """End a running trial as failed; the policy observes it with the cost it had spent."""
    spent = float(trial.cost or 0.0)
    pruning_gts.observe(job.state, trial.batch_size, spent, False, trial.exploration)
    job.state_dirty = True
    conn.execute(
        update(TRIALS)
        .where(TRIALS.c.job_id == job.job_id, TRIALS.c.trial_number == trial.trial_number)
        .values(
            status=FAILED,
            converged=False,
            message=why,
            lease_expires_at=None,
            updated_at=clock.now,
        )
    )
    logger.info("job %s trial %d failed: %s", job.job_id, trial.trial_number, why)


# ----------------------------------------------------------------------------------------- predict


def predict(conn: Connection, job_id: str, clock: Clock) -> PredictResponse:
    """Hand out a new trial: its number and the batch size the policy picks."""
    job = _lock_job(conn, job_id, UnknownJob)
    _expire_leases(conn, job, clock)
    try:
        batch_size, exploration = pruning_gts.next_batch_size(job.state)
    except NoFeasibleBatchSize as e:
        if job.state_dirty:  # the leases just expired stay expired: this error commits
            _save_job(conn, job, clock)
        raise JobInfeasible(
            f"job {job_id!r} cannot be optimised: {e}. Check target_metric and batch_sizes, "
            "then delete and register the job again.",
            keep_changes=True,
        ) from None
    job.num_trials += 1
    conn.execute(
        insert(TRIALS).values(
            job_id=job_id,
            trial_number=job.num_trials,
            batch_size=batch_size,
            exploration=exploration,
            status=RUNNING,
            started_at=clock.now,
            updated_at=clock.now,
            lease_expires_at=clock.now + clock.lease_s,
        )
    )
    _save_job(conn, job, clock)
    return PredictResponse(job_id=job_id, batch_size=batch_size, trial_number=job.num_trials)


# ------------------------------------------------------------------------------------------ report


def _locked_trial(conn: Connection, job: LockedJob, trial: TrialId) -> Row:
    row = conn.execute(
        select(TRIALS).where(
            TRIALS.c.job_id == job.job_id, TRIALS.c.trial_number == trial.trial_number
        )
    ).first()
    if row is None or row.batch_size != trial.batch_size:
        raise UnknownTrial(
            f"job {job.job_id!r} has no trial {trial.trial_number} with batch size "
            f"{trial.batch_size}"
        )
    return row


def report(conn: Connection, result: TrainingResult, clock: Clock) -> ReportResponse:
    """Account one epoch's cumulative result; decide whether training goes on."""
    job = _lock_job(conn, result.job_id, UnknownJob)
    _expire_leases(conn, job, clock)
    trial = _locked_trial(conn, job, result)
    if trial.status != RUNNING:  # already ended: the stored outcome, again
        if job.state_dirty:
            _save_job(conn, job, clock)
        return ReportResponse(
            stop_train=True, converged=bool(trial.converged), message=trial.message or ""
        )
    spec, state = job.spec, job.state
    cost = zeus_cost(result.energy, result.time, spec.eta_knob, spec.max_power)
    reached = (
        result.metric >= spec.target_metric
        if spec.higher_is_better_metric
        else result.metric <= spec.target_metric
    )
    bound = (
        None
        if spec.beta_knob is None or state.min_cost is None
        else spec.beta_knob * state.min_cost
    )
    within_budget = bound is None or cost <= bound
    measured = {
        "current_epoch": result.current_epoch,
        "time_s": result.time,
        "energy_j": result.energy,
        "cost": cost,
        "updated_at": clock.now,
    }
    where = (TRIALS.c.job_id == job.job_id, TRIALS.c.trial_number == result.trial_number)
    if within_budget and result.current_epoch < spec.max_epochs and not reached:
        conn.execute(
            update(TRIALS)
            .where(*where)
            .values(lease_expires_at=clock.now + clock.lease_s, **measured)
        )
        if job.state_dirty:
            _save_job(conn, job, clock)
        return ReportResponse(stop_train=False, converged=False, message="keep training")
    converged = reached and within_budget
    message = _outcome_message(reached, within_budget, cost, bound, result.current_epoch)
    conn.execute(
        update(TRIALS)
        .where(*where)
        .values(
            status=SUCCEEDED if converged else FAILED,
            converged=converged,
            message=message[:MAX_MESSAGE_LEN],
            lease_expires_at=None,
            **measured,
        )
    )
    pruning_gts.observe(state, result.batch_size, cost, converged, trial.exploration)
    _save_job(conn, job, clock)
    return ReportResponse(stop_train=True, converged=converged, message=message)


def _outcome_message(
    reached: bool, within_budget: bool, cost: float, bound: float | None, epoch: int
) -> str:
    if reached and within_budget:
        return f"reached the target metric at epoch {epoch} (cost {cost:.6g})"
    if not within_budget:
        return f"stopped early: cost {cost:.6g} exceeds beta * min_cost = {bound:.6g}"
    return f"stopped at max_epochs ({epoch}) without reaching the target metric"


# ------------------------------------------------------------------------------ end trial, delete


def end_trial(conn: Connection, trial_id: TrialId, clock: Clock) -> None:
    """End a still-running trial as failed; ending an ended trial changes nothing."""
    job = _lock_job(conn, trial_id.job_id, JobNotFound)
    _expire_leases(conn, job, clock)
    trial = _locked_trial(conn, job, trial_id)
    if trial.status == RUNNING:
        _abandon(conn, job, trial, "ended by the client before finishing", clock)
    if job.state_dirty:
        _save_job(conn, job, clock)


def delete_job(conn: Connection, job_id: str) -> None:
    conn.execute(delete(TRIALS).where(TRIALS.c.job_id == job_id))
    if conn.execute(delete(JOBS).where(JOBS.c.job_id == job_id)).rowcount == 0:
        raise JobNotFound(f"unknown job_id {job_id!r}")
    logger.info("deleted job %s", job_id)


# ------------------------------------------------------------------------------------------- reads


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


def job_detail(conn: Connection, job_id: str) -> JobDetail:
    row = conn.execute(select(JOBS).where(JOBS.c.job_id == job_id)).first()
    if row is None:
        raise JobNotFound(f"unknown job_id {job_id!r}")
    trials = conn.execute(
        select(TRIALS).where(TRIALS.c.job_id == job_id).order_by(TRIALS.c.trial_number)
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
