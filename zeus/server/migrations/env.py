"""Alembic environment of the BSO server; run through `zeus.server.db.migrate`."""

from __future__ import annotations

from alembic import context

from zeus.server.models import Base

VERSION_TABLE = "bso_alembic_version"

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
)
with context.begin_transaction():
    context.run_migrations()
