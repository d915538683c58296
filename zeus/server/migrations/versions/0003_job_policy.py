"""Each job names its batch-size policy; the jobs already stored are the paper's (pruning-gts).

Revision ID: 0003_job_policy
Revises: 0002_lease_epochs
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_job_policy"
down_revision = "0002_lease_epochs"
branch_labels = None
depends_on = None

PAPER_POLICY = "pruning-gts"  # the only policy revision 0002 stores


def upgrade() -> None:
    op.add_column(
        "bso_jobs",
        sa.Column("policy", sa.String(64), nullable=False, server_default=PAPER_POLICY),
    )


def downgrade() -> None:
    # Revision 0002 reads every state as the paper's: refuse while other policies' jobs exist,
    # before any change, rather than leave rows that the older server cannot read.
    jobs = sa.table("bso_jobs", sa.column("job_id"), sa.column("policy"))
    other = sa.select(jobs.c.job_id).where(jobs.c.policy != PAPER_POLICY)
    rows = op.get_bind().execute(other.order_by(jobs.c.job_id).limit(4)).scalars().all()
    if rows:
        shown = ", ".join(repr(r) for r in rows[:3]) + (", ..." if len(rows) > 3 else "")
        raise RuntimeError(
            f"cannot downgrade below 0003_job_policy: jobs {shown} use a policy other than "
            f"{PAPER_POLICY}, which revision 0002 cannot store; delete them first "
            "(DELETE /jobs?job_id=...)"
        )
    with op.batch_alter_table("bso_jobs") as batch:
        batch.drop_column("policy")
