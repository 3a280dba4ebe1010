"""Schema version 2: delivery leases (deliveries.worker, lease_until, next_attempt_at and the index
deliveries_pending), and the tables workers, rate_buckets, leases and runs.

A state from before the migrations at schema version 1 may hold some of the new tables already (publisher
between schema 2's declaration and the migrations made missing tables when it opened a state, without
the columns): what is there is kept, the rest is made.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LEASE_COLUMNS: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "worker": sa.String, "lease_until": sa.Float, "next_attempt_at": sa.Float}
META = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.String))


def _schema_version(value: str) -> None:
    op.execute(META.update().where(META.c.key == "schema_version").values(value=value))


def _deliveries() -> None:
    inspector = sa.inspect(op.get_bind())
    have = {column["name"] for column in inspector.get_columns("deliveries")}
    with op.batch_alter_table("deliveries") as batch:  # SQLite: ALTER TABLE ADD COLUMN, no copy
        for name, kind in LEASE_COLUMNS.items():
            if name not in have:
                batch.add_column(sa.Column(name, kind))
    if "deliveries_pending" not in {index["name"] for index in inspector.get_indexes("deliveries")}:
        op.create_index("deliveries_pending", "deliveries", ["status", "next_attempt_at"])


def _workers() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("host", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("claimed", sa.Integer, nullable=False),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("state", sa.String, nullable=False),
    )


def _rate_buckets() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("stamp", sa.Float, nullable=False),
    )


def _leases() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("holder", sa.String, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )


def _runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("finished", sa.Float),
    )


TABLES: dict[str, Callable[[], None]] = {"workers": _workers, "rate_buckets": _rate_buckets, "leases": _leases,
                                         "runs": _runs}


def upgrade() -> None:
    _deliveries()
    present = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in TABLES.items():
        if name not in present:
            create()
    _schema_version("2")


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
    op.drop_index("deliveries_pending", "deliveries")
    with op.batch_alter_table("deliveries") as batch:
        for name in LEASE_COLUMNS:
            batch.drop_column(name)
    _schema_version("1")
