"""Initial schema: jobs and their trials.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
# Job ids compare byte for byte on MySQL too (its default collation ignores case).
JOB_ID = sa.String(256).with_variant(
    mysql.VARCHAR(256, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


def upgrade() -> None:
    op.create_table(
        "bso_jobs",
        sa.Column("job_id", JOB_ID, nullable=False),
        sa.Column("spec_json", LONG_TEXT, nullable=False),
        sa.Column("policy_state_json", LONG_TEXT, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("num_trials", sa.BigInteger(), nullable=False),
        sa.Column("min_cost", sa.Double(), nullable=True),
        sa.Column("min_cost_batch_size", sa.BigInteger(), nullable=True),
        sa.Column("next_lease_expiry", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_bso_jobs"),
    )
    op.create_table(
        "bso_trials",
        sa.Column("job_id", JOB_ID, nullable=False),
        sa.Column("trial_number", sa.BigInteger(), nullable=False),
        sa.Column("batch_size", sa.BigInteger(), nullable=False),
        sa.Column("exploration", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("lease_expires_at", sa.Double(), nullable=True),
        sa.Column("current_epoch", sa.BigInteger(), nullable=True),
        sa.Column("time_s", sa.Double(), nullable=True),
        sa.Column("energy_j", sa.Double(), nullable=True),
        sa.Column("cost", sa.Double(), nullable=True),
        sa.Column("converged", sa.Boolean(), nullable=True),
        sa.Column("message", sa.String(1024), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["bso_jobs.job_id"],
            name="fk_bso_trials_job_id_bso_jobs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "trial_number", name="pk_bso_trials"),
    )


def downgrade() -> None:
    op.drop_table("bso_trials")
    op.drop_table("bso_jobs")
