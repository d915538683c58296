"""Leases sized from what a job has shown: the longest gap between a trial's heartbeats.

Revision ID: 0002_lease_epochs
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_lease_epochs"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for existing jobs: their next trials get the hard-cap lease until a report comes.
    op.add_column("bso_jobs", sa.Column("longest_epoch_s", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bso_jobs") as batch:
        batch.drop_column("longest_epoch_s")
