"""Alembic's environment: migrate the connection `publisher.state.migrate` passes in
(`config.attributes["connection"]`), inside the transaction it already holds. No fileConfig: a normal run
logs nothing of Alembic's."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from publisher.state.schema import metadata

connection = context.config.attributes["connection"]
if not isinstance(connection, sa.Connection):
    raise RuntimeError("publisher migrations run only through publisher.state.migrate, on a connection")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
