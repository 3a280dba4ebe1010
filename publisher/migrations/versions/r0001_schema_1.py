"""Schema version 1: the state as publisher kept it before the migrations (commit 7ca981b).

A state made before the migrations (meta schema_version 1, no alembic_version table) is upgraded from
here as well: a table it already has is kept as it is (an older publisher may have made fewer of them,
adding the others later without a version change), and only the missing ones are made.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _meta() -> None:
    op.create_table("meta", sa.Column("key", sa.String, primary_key=True), sa.Column("value", sa.String))


def _articles() -> None:
    op.create_table(
        "articles",
        sa.Column("slug", sa.String, primary_key=True),
        sa.Column("id", sa.String, nullable=False, unique=True),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("content_hash", sa.String, nullable=False),
        sa.Column("published", sa.String, nullable=False),
        sa.Column("updated", sa.String),
        sa.Column("first_seen", sa.String, nullable=False),
    )


def _sources() -> None:
    op.create_table(
        "sources",
        sa.Column("path", sa.String, primary_key=True),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.String, nullable=False),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
    )


def _related_lists() -> None:
    op.create_table(
        "related_lists",
        sa.Column("slug", sa.String, primary_key=True),
        sa.Column("input_key", sa.String, nullable=False),
        sa.Column("ranked", sa.Text, nullable=False),
    )


def _related_index() -> None:
    op.create_table(
        "related_index",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("hashes", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def _memo() -> None:
    op.create_table(
        "memo",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("input_key", sa.String, nullable=False),
        sa.Column("output_sha", sa.String, nullable=False),
    )


def _digests() -> None:
    op.create_table(
        "digests",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("created", sa.String, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )


def _digest_articles() -> None:
    op.create_table(
        "digest_articles",
        sa.Column("digest_id", sa.String, sa.ForeignKey("digests.id"), primary_key=True),
        sa.Column("slug", sa.String, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )


def _subscribers() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("email", sa.String, nullable=False, unique=True),
        sa.Column("address", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("bounces", sa.Integer, nullable=False),
        sa.Column("created", sa.String, nullable=False),
        sa.Column("changed", sa.String, nullable=False),
    )


def _deliveries() -> None:
    op.create_table(
        "deliveries",
        sa.Column("digest_id", sa.String, sa.ForeignKey("digests.id"), primary_key=True),
        sa.Column("subscriber_id", sa.String, primary_key=True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("message_id", sa.String),
        sa.Column("changed", sa.String, nullable=False),
        sa.Column("error", sa.String),
    )


TABLES: dict[str, Callable[[], None]] = {  # in an order foreign keys allow
    "meta": _meta, "articles": _articles, "sources": _sources, "related_lists": _related_lists,
    "related_index": _related_index, "memo": _memo, "digests": _digests, "digest_articles": _digest_articles,
    "subscribers": _subscribers, "deliveries": _deliveries,
}


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in TABLES.items():
        if name not in present:
            create()
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.String))
    if op.get_bind().execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first() is None:
        op.bulk_insert(meta, [{"key": "schema_version", "value": "1"}])


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
