"""The hot statements, compiled once per database dialect and run as plain driver SQL.

Building and compiling SQLAlchemy constructs costs more CPU than the statements themselves on the
request paths (predict, report); compiling them once and executing them with
``exec_driver_sql`` keeps a request at a few hundred microseconds. Reads that are not hot use Core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Dialect,
    bindparam,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from zeus.optimizer.batch_size.server.models import JOBS, TRIALS


@dataclass(frozen=True)
class Query:
    """SQL text in the driver's parameter style, and the parameter order if it is positional."""

    sql: str
    order: tuple[str, ...] | None
    constants: dict[str, Any]  # values of the literals in the statement (e.g. status = 'running')

    def run(self, conn: Connection, **params: Any) -> CursorResult[Any]:
        values = {**self.constants, **params}
        args: Any = values if self.order is None else tuple(values[k] for k in self.order)
        return conn.exec_driver_sql(self.sql, args)


def _compile(statement: ClauseElement, dialect: Dialect) -> Query:
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    constants = {k: v for k, v in compiled.params.items() if v is not None}
    return Query(str(compiled), order, constants)


@dataclass(frozen=True)
class Tx:
    """One open write transaction and the dialect's precompiled statements."""

    conn: Connection
    q: Queries


def _bind(name: str) -> Any:
    return bindparam(name)


class Queries:
    """Every hot statement for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        jobs, trials = JOBS.c, TRIALS.c
        job = jobs.job_id == _bind("job_id")
        trial = (trials.job_id == _bind("job_id"), trials.trial_number == _bind("trial_number"))
        running = (trials.job_id == _bind("job_id"), trials.status == "running")
        statements: dict[str, ClauseElement] = {
            "spec": select(jobs.spec_json).where(job),
            "lock_job": select(
                jobs.spec_json,
                jobs.policy_state_json,
                jobs.num_trials,
                jobs.min_cost,
                jobs.next_lease_expiry,
            )
            .where(job)
            .with_for_update(),
            "save_job": update(JOBS)
            .where(job)
            .values(
                policy_state_json=_bind("state"),
                stage=_bind("stage"),
                num_trials=_bind("num_trials"),
                min_cost=_bind("min_cost"),
                min_cost_batch_size=_bind("min_cost_bs"),
                next_lease_expiry=_bind("next_lease_expiry"),
                updated_at=_bind("now"),
            ),
            "overdue": select(
                trials.trial_number, trials.batch_size, trials.exploration, trials.cost
            ).where(*running, trials.lease_expires_at < _bind("now")),
            "next_expiry": select(func.min(trials.lease_expires_at)).where(*running),
            "insert_trial": insert(TRIALS).values(
                job_id=_bind("job_id"),
                trial_number=_bind("trial_number"),
                batch_size=_bind("batch_size"),
                exploration=_bind("exploration"),
                status="running",
                started_at=_bind("now"),
                updated_at=_bind("now"),
                lease_expires_at=_bind("lease_expires_at"),
            ),
            "trial": select(
                trials.batch_size,
                trials.exploration,
                trials.status,
                trials.lease_expires_at,
                trials.cost,
                trials.converged,
                trials.message,
            ).where(*trial),
            "progress": update(TRIALS)
            .where(*trial)
            .values(
                current_epoch=_bind("current_epoch"),
                time_s=_bind("time_s"),
                energy_j=_bind("energy_j"),
                cost=_bind("cost"),
                updated_at=_bind("now"),
                lease_expires_at=_bind("lease_expires_at"),
            ),
            "finish": update(TRIALS)
            .where(*trial)
            .values(
                current_epoch=_bind("current_epoch"),
                time_s=_bind("time_s"),
                energy_j=_bind("energy_j"),
                cost=_bind("cost"),
                updated_at=_bind("now"),
                status=_bind("status"),
                converged=_bind("converged"),
                message=_bind("message"),
                lease_expires_at=null(),
            ),
            "abandon": update(TRIALS)
            .where(*trial)
            .values(
                status="failed",
                converged=False,
                message=_bind("message"),
                lease_expires_at=null(),
                updated_at=_bind("now"),
            ),
        }
        compiled = {name: _compile(stmt, dialect) for name, stmt in statements.items()}
        self.spec = compiled["spec"]
        self.lock_job = compiled["lock_job"]
        self.save_job = compiled["save_job"]
        self.overdue = compiled["overdue"]
        self.next_expiry = compiled["next_expiry"]
        self.insert_trial = compiled["insert_trial"]
        self.trial = compiled["trial"]
        self.progress = compiled["progress"]
        self.finish = compiled["finish"]
        self.abandon = compiled["abandon"]
