"""Database tables (SQLAlchemy 2). Changing them needs a new migration under ``migrations/versions``.

Floats are 64-bit (``Double``) and integers 64-bit (``BigInteger``) on every backend; string lengths
match the limits the wire schemas enforce, so a validated request never fails on insert.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Double, ForeignKey, MetaData, String, Table, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from zeus.optimizer.batch_size.schemas import MAX_JOB_ID_LEN, MAX_MESSAGE_LEN

# MySQL's TEXT stops at 64 KiB; a policy state with a long history needs more.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# MySQL's default collation ignores case and trailing spaces: job ids must compare byte for byte.
JobIdType = String(MAX_JOB_ID_LEN).with_variant(
    mysql.VARCHAR(MAX_JOB_ID_LEN, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class JobRow(Base):
    """One recurring job: its spec, the policy's state and the best cost so far."""

    __tablename__ = "bso_jobs"

    job_id: Mapped[str] = mapped_column(JobIdType, primary_key=True)
    spec_json: Mapped[str] = mapped_column(LongText)
    policy_state_json: Mapped[str] = mapped_column(LongText)
    stage: Mapped[str] = mapped_column(String(16))
    num_trials: Mapped[int] = mapped_column(BigInteger, default=0)
    min_cost: Mapped[float | None] = mapped_column(Double, nullable=True)
    min_cost_batch_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A lower bound of the running trials' lease ends: no lease can have expired before it.
    next_lease_expiry: Mapped[float | None] = mapped_column(Double, nullable=True)
    # The longest silence between two heartbeats of a trial seen so far: sets the lease's length.
    longest_epoch_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)


class TrialRow(Base):
    """One recurrence of a job: the batch size it got and how it ended."""

    __tablename__ = "bso_trials"

    job_id: Mapped[str] = mapped_column(
        JobIdType,
        ForeignKey("bso_jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    )
    trial_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    batch_size: Mapped[int] = mapped_column(BigInteger)
    exploration: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    lease_expires_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    current_epoch: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    time_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    energy_j: Mapped[float | None] = mapped_column(Double, nullable=True)
    cost: Mapped[float | None] = mapped_column(Double, nullable=True)
    converged: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    message: Mapped[str | None] = mapped_column(String(MAX_MESSAGE_LEN), nullable=True)


JOBS: Table = JobRow.__table__  # type: ignore[assignment]
TRIALS: Table = TrialRow.__table__  # type: ignore[assignment]
