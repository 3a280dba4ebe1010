"""The tables of the state database (SQLAlchemy Core) and the schema version stored in its `meta` table.

Only the layout lives here: `publisher.store` reads and writes the rows, `publisher.state.statefile` checks,
creates and opens the file.
"""

from __future__ import annotations

import sqlalchemy as sa

from publisher.state.versions import SCHEMA_VERSION as SCHEMA_VERSION  # kept here too: the version of this layout

metadata = sa.MetaData()
meta = sa.Table("meta", metadata, sa.Column("key", sa.String, primary_key=True), sa.Column("value", sa.String))
articles = sa.Table(
    "articles", metadata,
    sa.Column("slug", sa.String, primary_key=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("content_hash", sa.String, nullable=False),
    sa.Column("published", sa.String, nullable=False),
    sa.Column("updated", sa.String),
    sa.Column("first_seen", sa.String, nullable=False),
)
sources = sa.Table(
    "sources", metadata,
    sa.Column("path", sa.String, primary_key=True),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("entry", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
)

related_lists = sa.Table(
    "related_lists", metadata,
    sa.Column("slug", sa.String, primary_key=True),
    sa.Column("input_key", sa.String, nullable=False),
    sa.Column("ranked", sa.Text, nullable=False),  # JSON [[slug, score, reason], ...]
)
related_index = sa.Table(
    "related_index", metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("hashes", sa.Text, nullable=False),  # JSON {slug: content hash} of the indexed articles
    sa.Column("data", sa.LargeBinary, nullable=False),
)
memo = sa.Table(
    "memo", metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("input_key", sa.String, nullable=False),
    sa.Column("output_sha", sa.String, nullable=False),
)
digests = sa.Table(
    "digests", metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("created", sa.String, nullable=False),
    sa.Column("subject", sa.String, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)
digest_articles = sa.Table(
    "digest_articles", metadata,
    sa.Column("digest_id", sa.String, sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("slug", sa.String, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)

subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.String, primary_key=True),  # random, stable; names the .eml and signs the token
    sa.Column("email", sa.String, nullable=False, unique=True),  # normalized, lower case: the identity
    sa.Column("address", sa.String, nullable=False),  # as validated, for the To header
    sa.Column("name", sa.String, nullable=False, default=""),
    sa.Column("status", sa.String, nullable=False),  # pending, active, unsubscribed, bounced
    sa.Column("bounces", sa.Integer, nullable=False, default=0),
    sa.Column("created", sa.String, nullable=False),
    sa.Column("changed", sa.String, nullable=False),
)
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("digest_id", sa.String, sa.ForeignKey("digests.id"), primary_key=True),
    sa.Column("subscriber_id", sa.String, primary_key=True),
    sa.Column("status", sa.String, nullable=False),  # queued, sent, failed, bounced
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("message_id", sa.String),
    sa.Column("changed", sa.String, nullable=False),
    sa.Column("error", sa.String),
    sa.Column("worker", sa.String),  # the worker whose lease holds the row (None: nobody)
    sa.Column("lease_until", sa.Float),  # epoch seconds, database clock: the lease ends; then others may claim it
    sa.Column("next_attempt_at", sa.Float),  # epoch seconds, database clock: a refused row waits until then
)
sa.Index("deliveries_pending", deliveries.c.status, deliveries.c.next_attempt_at)

workers = sa.Table(  # one row per `publisher send` process, for `send --status`
    "workers", metadata,
    sa.Column("id", sa.String, primary_key=True),  # host:pid:random
    sa.Column("host", sa.String, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started", sa.Float, nullable=False),  # epoch seconds, database clock
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("claimed", sa.Integer, nullable=False, default=0),
    sa.Column("sent", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("state", sa.String, nullable=False),  # running, finished, stopped
)
rate_buckets = sa.Table(  # shared token buckets: "*" for email.rate, "domain:<name>" per recipient domain
    "rate_buckets", metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("stamp", sa.Float, nullable=False),  # epoch seconds, database clock, of the last refill
)
leases = sa.Table(  # leadership: one row per role ("scheduler"), with a fencing epoch that grows per new leader
    "leases", metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("holder", sa.String, nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),  # epoch seconds, database clock
)
runs = sa.Table(  # scheduled runs: a run is started once, and finished by the next leader if its own died
    "runs", metadata,
    sa.Column("id", sa.String, primary_key=True),  # the scheduled fire time, ISO UTC
    sa.Column("epoch", sa.BigInteger, nullable=False),  # the leader's epoch that claimed it
    sa.Column("holder", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),  # running, published, done
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("finished", sa.Float),
)
