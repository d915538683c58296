"""The hot statements, compiled once per database dialect and run as plain driver SQL.

Building, compiling and wrapping SQLAlchemy constructs and results costs more CPU than the
statements themselves on the request paths (predict, report). Compiling them once and running them
on the transaction's own driver connection (same transaction, same commit) keeps a request at a few
hundred microseconds. Reads that are not hot use Core.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Dialect,
    bindparam,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from zeus.server.models import JOBS, TRIALS


@dataclass(frozen=True)
class Query:
    """SQL text in the driver's parameter style, run on the transaction's driver connection.

    ``order``: parameter order when the style is positional; ``constants``: values of the literals
    in the statement (e.g. ``status = 'running'``); ``row``: the tuple type of a result row.
    Driver errors come out wrapped as SQLAlchemy's (``IntegrityError``, ``OperationalError``).
    """

    sql: str
    order: tuple[str, ...] | None
    constants: dict[str, Any]
    row: Any
    driver_error: type[Exception]

    def _cursor(self, conn: Connection, params: dict[str, Any]) -> Any:
        values = {**self.constants, **params}
        args: Any = values if self.order is None else tuple(values[k] for k in self.order)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, args)
        except self.driver_error as e:
            if conn.dialect.is_disconnect(e, conn.connection.dbapi_connection, cursor):  # type: ignore[arg-type]
                conn.invalidate(e)  # never hand this connection out again
            cursor.close()
            raise DBAPIError.instance(self.sql, args, e, self.driver_error) from e
        return cursor

    def execute(self, conn: Connection, **params: Any) -> int:
        """Run a write; returns the number of rows it changed."""
        cursor = self._cursor(conn, params)
        count: int = cursor.rowcount
        cursor.close()
        return count

    def all(self, conn: Connection, **params: Any) -> list[Any]:
        cursor = self._cursor(conn, params)
        rows = cursor.fetchall()
        cursor.close()
        return [self.row._make(r) for r in rows]

    def first(self, conn: Connection, **params: Any) -> Any:
        rows = self.all(conn, **params)
        return rows[0] if rows else None

    def scalar(self, conn: Connection, **params: Any) -> Any:
        row = self.first(conn, **params)
        return None if row is None else row[0]


def _compile(statement: ClauseElement, dialect: Dialect) -> Query:
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    constants = {k: v for k, v in compiled.params.items() if v is not None}
    names = [c.key for c in getattr(statement, "selected_columns", [])]
    row = namedtuple("Row", names or ["rowcount"], rename=True)  # type: ignore[misc]
    driver_error: type[Exception] = dialect.loaded_dbapi.Error
    return Query(str(compiled), order, constants, row, driver_error)


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
                jobs.longest_epoch_s,
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
                longest_epoch_s=_bind("longest_epoch_s"),
                updated_at=_bind("now"),
            ),
            "job_leases": update(JOBS)
            .where(job)
            .values(
                longest_epoch_s=_bind("longest_epoch_s"),
                next_lease_expiry=_bind("next_lease_expiry"),
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
                trials.updated_at,
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
        self.job_leases = compiled["job_leases"]
        self.overdue = compiled["overdue"]
        self.next_expiry = compiled["next_expiry"]
        self.insert_trial = compiled["insert_trial"]
        self.trial = compiled["trial"]
        self.progress = compiled["progress"]
        self.finish = compiled["finish"]
        self.abandon = compiled["abandon"]
