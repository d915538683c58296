"""What each write endpoint does to the database, inside the caller's transaction (`Tx`).

Decisions come from the shared policy core (`zeus.policy.pruning_gts`); this module only stores its
state per job and calls it. Every operation on a job first locks the job row (PostgreSQL/MySQL; SQLite
holds the database write lock already), so decisions of one job are serialised across processes.
Leases (`leases.py`): each report renews a trial's lease; predict fails the job's running trials
whose lease ran out (skipped while ``next_lease_expiry``, a lower bound of the running leases, lies
ahead), and only predict: a report that comes first proves its trial alive. Reports with a zero or
impossible time or energy are refused (`check_plausible`): one such report would set the job's
minimum cost to nothing and stop every later trial at its first epoch. Hot statements are
precompiled (`queries.py`).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import delete, insert, update

from zeus.cost import CostModel
from zeus.optimizer.batch_size.schemas import (
    MAX_MESSAGE_LEN,
    JobSpecFromClient,
    JobSummary,
    PredictResponse,
    ReportResponse,
    TrainingResult,
    TrialId,
)
from zeus.policy import pruning_gts
from zeus.policy.pruning_gts import NoFeasibleBatchSize, PruningGTSState
from zeus.server import reads
from zeus.server.errors import (
    DomainError,
    ImplausibleReport,
    JobInfeasible,
    JobNotFound,
    SpecConflict,
    UnknownJob,
    UnknownTrial,
)
from zeus.server.leases import LeasePolicy
from zeus.server.models import JOBS, TRIALS
from zeus.server.queries import Tx

logger = logging.getLogger(__name__)

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
STAGE_INFEASIBLE = "infeasible"
# No GPU averages more than its power limit for long; twice the job's max_power is a unit error.
MAX_POWER_RATIO = 2.0


@dataclass(frozen=True)
class Clock:
    """Time and lease rules of one request (passed in so tests can move time)."""

    now: float
    leases: LeasePolicy


@lru_cache(maxsize=4096)
def parse_spec(spec_json: str) -> JobSpecFromClient:
    """A job's stored spec; cached because it never changes while the job exists."""
    return JobSpecFromClient.model_validate_json(spec_json)


@lru_cache(maxsize=4096)
def cost_model(eta_knob: float, max_power_w: float) -> CostModel:
    """A job's cost (validated once per job, not on every report)."""
    return CostModel(eta_knob, max_power_w)


@dataclass
class LockedJob:
    """A job row locked for this transaction; its policy state is decoded only when needed."""

    job_id: str
    spec: JobSpecFromClient
    state_json: str
    num_trials: int
    min_cost: float | None
    next_lease_expiry: float | None
    longest_epoch_s: float | None
    _state: PruningGTSState | None = None

    @property
    def state(self) -> PruningGTSState:
        if self._state is None:
            self._state = PruningGTSState.from_json(self.state_json)
        return self._state

    @property
    def changed(self) -> bool:
        return self._state is not None


def stage_of(state: PruningGTSState) -> str:
    return STAGE_INFEASIBLE if state.infeasible else state.stage


# ---------------------------------------------------------------------------------------- register


def register_job(tx: Tx, spec: JobSpecFromClient, clock: Clock) -> tuple[Any, bool]:
    """Create the job, or confirm an identical registration. Returns (spec echoed, created)."""
    if spec.job_id is None:
        spec = spec.model_copy(update={"job_id": f"{spec.job_id_prefix}-{secrets.token_hex(4)}"})
    existing = tx.q.spec.scalar(tx.conn, job_id=spec.job_id)
    if existing is not None:
        stored = parse_spec(existing)
        if not stored.same_job_as(spec):
            raise SpecConflict(
                f"job {spec.job_id!r} is already registered with a different spec; "
                "register under a new job_id or delete the job first"
            )
        return stored, False
    state = _fresh_state(spec)
    tx.conn.execute(
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
    sizes = spec.batch_sizes  # bounded log line, however many candidates
    logger.info(
        "registered job %s (%d batch sizes, %d to %d)", spec.job_id, len(sizes), sizes[0], sizes[-1]
    )
    return spec, True


def _fresh_state(spec: JobSpecFromClient) -> PruningGTSState:
    """The policy state of a job that has learned nothing yet."""
    return pruning_gts.new_state(
        spec.batch_sizes,
        spec.default_batch_size,
        seed=spec.mab_seed,
        num_pruning_rounds=spec.num_pruning_rounds,
        window_size=spec.window_size,
        prior_mean=spec.mab_prior_mean,
        prior_precision=spec.mab_prior_precision,
        num_explorations=spec.mab_num_explorations,
    )


# ------------------------------------------------------------------------------------ job locking


def _lock_job(tx: Tx, job_id: str, missing: type[DomainError]) -> LockedJob:
    row = tx.q.lock_job.first(tx.conn, job_id=job_id)
    if row is None:
        raise missing(f"unknown job_id {job_id!r}; register it with POST /jobs first")
    return LockedJob(
        job_id=job_id,
        spec=parse_spec(row.spec_json),
        state_json=row.policy_state_json,
        num_trials=row.num_trials,
        min_cost=row.min_cost,
        next_lease_expiry=row.next_lease_expiry,
        longest_epoch_s=row.longest_epoch_s,
    )


def _save_job(tx: Tx, job: LockedJob, clock: Clock) -> None:
    state = job.state
    tx.q.save_job.execute(
        tx.conn,
        job_id=job.job_id,
        state=state.to_json(),
        stage=stage_of(state),
        num_trials=job.num_trials,
        min_cost=state.min_cost,
        min_cost_bs=state.min_cost_bs,
        next_lease_expiry=job.next_lease_expiry,
        longest_epoch_s=job.longest_epoch_s,
        now=clock.now,
    )


def _expire_leases(tx: Tx, job: LockedJob, clock: Clock) -> None:
    """Fail every running trial of the job whose lease ran out; the policy learns of each."""
    if job.next_lease_expiry is None or job.next_lease_expiry > clock.now:
        return  # no running lease can have ended yet
    for trial in tx.q.overdue.all(tx.conn, job_id=job.job_id, now=clock.now):
        _abandon(tx, job, trial.trial_number, trial, "lease expired: no report in time", clock)
    job.next_lease_expiry = tx.q.next_expiry.scalar(tx.conn, job_id=job.job_id)


def abandoned_cost(spent: float | None, min_cost: float | None, beta: float | None) -> float:
    """The cost the policy learns for a trial that died without finishing.

    What it had spent is too low (it stopped early, maybe before its first report) and would make a
    crashing batch size look cheap to the bandit. It is charged at least the budget of a run that
    fails: ``beta · min_cost`` (``min_cost`` without early stopping), once a run has converged.
    """
    floor = 0.0 if min_cost is None else min_cost * (beta if beta is not None else 1.0)
    return max(spent or 0.0, floor)


def _abandon(tx: Tx, job: LockedJob, number: int, trial: Any, why: str, clock: Clock) -> None:
    """End a running trial as failed; the policy observes a failure (see `abandoned_cost`)."""
    state = job.state
    cost = abandoned_cost(trial.cost, state.min_cost, job.spec.beta_knob)
    pruning_gts.observe(state, trial.batch_size, cost, False, bool(trial.exploration))
    tx.q.abandon.execute(
        tx.conn, job_id=job.job_id, trial_number=number, message=why, now=clock.now
    )
    logger.info("job %s trial %d failed: %s", job.job_id, number, why)


# ----------------------------------------------------------------------------------------- predict


def predict(tx: Tx, job_id: str, clock: Clock) -> PredictResponse:
    """Hand out a new trial: its number and the batch size the policy picks."""
    job = _lock_job(tx, job_id, UnknownJob)
    _expire_leases(tx, job, clock)
    try:
        batch_size, exploration = pruning_gts.next_batch_size(job.state)
    except NoFeasibleBatchSize as e:
        _save_job(tx, job, clock)  # keep expired leases expired: this error commits
        raise JobInfeasible(
            f"job {job_id!r} cannot be optimised: {e}. Check target_metric and batch_sizes, "
            "then delete and register the job again.",
            keep_changes=True,
        ) from None
    job.num_trials += 1
    lease_end = clock.now + clock.leases.length_s(job.longest_epoch_s)
    tx.q.insert_trial.execute(
        tx.conn,
        job_id=job_id,
        trial_number=job.num_trials,
        batch_size=batch_size,
        exploration=exploration,
        now=clock.now,
        lease_expires_at=lease_end,
    )
    if job.next_lease_expiry is None or lease_end < job.next_lease_expiry:
        job.next_lease_expiry = lease_end
    _save_job(tx, job, clock)
    return PredictResponse(job_id=job_id, batch_size=batch_size, trial_number=job.num_trials)


# ------------------------------------------------------------------------------------------ report


class TrialState(NamedTuple):
    """The columns of a trial that report and end need (order of `Queries.trial`)."""

    batch_size: int
    exploration: bool
    status: str
    lease_expires_at: float | None
    updated_at: float
    cost: float | None
    converged: bool | None
    message: str | None


def _trial(tx: Tx, job: LockedJob, trial: TrialId) -> TrialState:
    """The trial's row.

    A running trial whose lease ran out but that no batch size request has failed yet stays
    running: its report proves it alive (the server was down, or the database stalled), and the
    lease exists only to free its job from trials that are gone.
    """
    found = tx.q.trial.first(tx.conn, job_id=job.job_id, trial_number=trial.trial_number)
    row = None if found is None else TrialState._make(found)
    if row is None or row.batch_size != trial.batch_size:
        raise UnknownTrial(
            f"job {job.job_id!r} has no trial {trial.trial_number} with batch size "
            f"{trial.batch_size}"
        )
    return row


def report(tx: Tx, result: TrainingResult, clock: Clock) -> ReportResponse:
    """Account one epoch's cumulative result; decide whether training goes on."""
    job = _lock_job(tx, result.job_id, UnknownJob)
    trial = _trial(tx, job, result)
    if trial.status != RUNNING:  # already ended: the stored outcome, again
        converged = bool(trial.converged)
        return ReportResponse(stop_train=True, converged=converged, message=trial.message or "")
    spec = job.spec
    check_plausible(spec, result)
    cost = cost_model(spec.eta_knob, spec.max_power).cost(result.energy, result.time)
    if spec.higher_is_better_metric:
        reached = result.metric >= spec.target_metric
    else:
        reached = result.metric <= spec.target_metric
    bound = (
        None if spec.beta_knob is None or job.min_cost is None else spec.beta_knob * job.min_cost
    )
    within_budget = bound is None or cost <= bound
    measured = {
        "job_id": job.job_id,
        "trial_number": result.trial_number,
        "current_epoch": result.current_epoch,
        "time_s": result.time,
        "energy_j": result.energy,
        "cost": cost,
        "now": clock.now,
    }
    if within_budget and result.current_epoch < spec.max_epochs and not reached:
        lease_end = _renew(tx, job, clock.now - trial.updated_at, clock)
        tx.q.progress.execute(tx.conn, lease_expires_at=lease_end, **measured)
        return ReportResponse(stop_train=False, converged=False, message="keep training")
    _note_gap(job, clock.now - trial.updated_at, clock)  # saved with the job below
    converged = reached and within_budget
    message = _outcome_message(reached, within_budget, cost, bound, result.current_epoch)
    status = SUCCEEDED if converged else FAILED
    tx.q.finish.execute(
        tx.conn, status=status, converged=converged, message=message[:MAX_MESSAGE_LEN], **measured
    )
    pruning_gts.observe(job.state, result.batch_size, cost, converged, bool(trial.exploration))
    _save_job(tx, job, clock)
    return ReportResponse(stop_train=True, converged=converged, message=message)


def check_plausible(spec: JobSpecFromClient, result: TrainingResult) -> None:
    """Refuse a report no working job sends; the error names the field (HTTP 422).

    Time must be > 0; energy must be > 0 unless the job's cost ignores it (``eta_knob`` 0); the
    average power must stay under twice ``max_power`` (else the energy is not in joules).
    """
    if result.time <= 0:
        raise ImplausibleReport(
            "time", f"time must be > 0 (seconds since the trial began), got {result.time:g}"
        )
    if result.energy <= 0 and spec.eta_knob > 0:
        raise ImplausibleReport(
            "energy",
            f"energy must be > 0 (joules since the trial began) when eta_knob > 0, got "
            f"{result.energy:g}: is the energy meter working?",
        )
    power_w = result.energy / result.time
    if power_w > MAX_POWER_RATIO * spec.max_power:
        raise ImplausibleReport(
            "energy",
            f"energy {result.energy:.6g} J over {result.time:.6g} s averages {power_w:.6g} W, more "
            f"than {MAX_POWER_RATIO:g} x max_power ({spec.max_power:g} W): send joules and seconds",
        )


def _renew(tx: Tx, job: LockedJob, gap_s: float, clock: Clock) -> float:
    """Heartbeat of a trial that trains on: returns when its renewed lease ends."""
    grown = _note_gap(job, gap_s, clock)
    lease_end = clock.now + clock.leases.length_s(job.longest_epoch_s)
    # The first epochs shorten a lease granted before the job had shown any: keep the job's
    # lower bound of its leases' ends true, or predict would skip a sweep that is due.
    lowered = job.next_lease_expiry is None or lease_end < job.next_lease_expiry
    if lowered:
        job.next_lease_expiry = lease_end
    if grown or lowered:
        tx.q.job_leases.execute(
            tx.conn,
            job_id=job.job_id,
            longest_epoch_s=job.longest_epoch_s,
            next_lease_expiry=job.next_lease_expiry,
        )
    return lease_end


def _note_gap(job: LockedJob, gap_s: float, clock: Clock) -> bool:
    """A report came ``gap_s`` after its trial's previous sign of life: keep the job's longest."""
    if job.longest_epoch_s is not None and gap_s <= job.longest_epoch_s:
        return False
    job.longest_epoch_s = max(gap_s, 0.0)
    if clock.leases.tight(job.longest_epoch_s):
        logger.warning(
            "job %s: an epoch took %.0f s; the lease ceiling (%.0f s) leaves less than %g epochs "
            "of silence before a trial counts as dead",
            job.job_id,
            job.longest_epoch_s,
            clock.leases.length_s(job.longest_epoch_s),
            clock.leases.epoch_multiple,
        )
    return True


def _outcome_message(
    reached: bool, within_budget: bool, cost: float, bound: float | None, epoch: int
) -> str:
    if reached and within_budget:
        return f"reached the target metric at epoch {epoch} (cost {cost:.6g})"
    if not within_budget:
        return f"stopped early: cost {cost:.6g} exceeds beta * min_cost = {bound:.6g}"
    return f"stopped at max_epochs ({epoch}) without reaching the target metric"


# ------------------------------------------------------------------------------ end trial, delete


def end_trial(tx: Tx, trial_id: TrialId, clock: Clock) -> None:
    """End a still-running trial as failed; ending an ended trial changes nothing."""
    job = _lock_job(tx, trial_id.job_id, JobNotFound)
    trial = _trial(tx, job, trial_id)
    if trial.status == RUNNING:
        _abandon(
            tx, job, trial_id.trial_number, trial, "ended by the client before finishing", clock
        )
        _save_job(tx, job, clock)


def delete_job(tx: Tx, job_id: str) -> None:
    tx.conn.execute(delete(TRIALS).where(TRIALS.c.job_id == job_id))
    if tx.conn.execute(delete(JOBS).where(JOBS.c.job_id == job_id)).rowcount == 0:
        raise JobNotFound(f"unknown job_id {job_id!r}")
    logger.info("deleted job %s", job_id)


def reset_job(tx: Tx, job_id: str, clock: Clock) -> JobSummary:
    """Forget what the job learned (costs, minimum cost, pruning); keep its spec and trial history.

    The way out for a job whose minimum cost a bad report drove to (almost) nothing. Trials still
    running go on and end as usual, but their outcome only enters the batch sizes' history.
    """
    job = _lock_job(tx, job_id, JobNotFound)
    job._state = _fresh_state(job.spec)
    running = (TRIALS.c.job_id == job_id, TRIALS.c.status == RUNNING)
    tx.conn.execute(update(TRIALS).where(*running).values(exploration=False))
    _save_job(tx, job, clock)
    logger.warning("job %s: cost state reset (%d trials kept as history)", job_id, job.num_trials)
    return reads.job_summary(tx.conn, job_id)
