"""The delivery journal: one row per (digest, subscriber), so every digest reaches every subscriber
exactly once. Rows are queued in the transaction that records the digest; a row becomes `sent` only
after the transport accepted the message, and each change is committed at once (a crash loses at
most the message in flight, which the next run sends again).

Statuses: `queued` (never tried) and `failed` (tried, not delivered: refused for now, unreachable
server, or the message could not be built) are pending: every run tries them again. `expired` is
a `failed` row given up for good after its maximum number of tries (the name Postfix gives mail
that stayed queued too long); `sent`, `bounced` (refused for good, SMTP 5xx) and `cancelled` (the
subscriber left) are final too. `error` keeps the last reason, `attempts` the tries so far.

Claims: senders (one `publisher send`, or any number of `publisher send --worker` on PostgreSQL) take
pending rows a small batch at a time (`claim`: SELECT ... FOR UPDATE SKIP LOCKED, then the rows get the
sender's id in `worker` and a lease end in `lease_until`, on the database clock). A row is claimable
when it is pending, its `next_attempt_at` (set after a 4xx) is due, and nobody holds it: no lease, or an
expired one. A sender renews the lease of the rows it still holds (`renew`) and marks each row with an
UPDATE fenced by its id (`mark(worker=...)`): a stale sender whose row was taken by another marks nothing.
A mark clears the lease. A row a sender gave up on for its run (its retries used up, or the server
unreachable) keeps that sender's id with no lease: the same sender does not take it again, any other
(a later run) does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from publisher.deliver.queued import PENDING  # the statuses a run tries (again)
from publisher.state.dialect import now as db_now
from publisher.state.dialect import skip_locked
from publisher.state.schema import deliveries, digests, subscribers
from publisher.store import Store

BATCH = 500
STATUSES = ("queued", "sent", "failed", "expired", "bounced", "cancelled")
KEY = (deliveries.c.digest_id == sa.bindparam("d"), deliveries.c.subscriber_id == sa.bindparam("s"))
HELD = (deliveries.c.worker == sa.bindparam("w"), deliveries.c.lease_until.is_not(None))  # the sender's own row


@dataclass(frozen=True, slots=True)
class Pending:
    digest_id: str
    subscriber_id: str
    address: str
    name: str
    status: str  # the subscriber's status now
    attempts: int


@dataclass(frozen=True, slots=True)
class Problem:
    """A row that is not delivered: `failed` (tried again) or `expired` (given up), with its last error."""

    digest_id: str
    subscriber_id: str
    address: str
    status: str
    attempts: int
    error: str


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


class Prepared:
    """A statement compiled once for the connection's dialect and run with `exec_driver_sql`: SQLAlchemy's
    per-execution work (cache lookup, parameter processing, result set-up) is skipped, so one mark costs about
    35 µs of CPU instead of 90 (psycopg then prepares it on the server after a few runs). The SQL is
    SQLAlchemy's own rendering of the statement; errors still come as SQLAlchemy's (a lost connection is
    invalidated and reconnected as for any other statement). Parameters are passed as the driver takes them:
    plain str, int, float or None values only."""

    def __init__(self, conn: sa.Connection, statement: sa.Update) -> None:
        compiled = statement.compile(dialect=conn.dialect)
        self.conn, self.sql = conn, str(compiled)
        self.defaults = dict(compiled.params)
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None

    def __call__(self, values: dict[str, object]) -> int:
        """Runs it with `values` (by bind name); the number of rows it changed."""
        params = {**self.defaults, **values}
        args = tuple(params[name] for name in self.order) if self.order is not None else params
        return int(self.conn.exec_driver_sql(self.sql, args).rowcount)


class Journal:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn
        self.now = db_now(self.conn)  # the database clock: leases and retry times agree across machines
        self._claims: tuple[sa.Update, sa.Select[str, str, str, str]] | None = None
        marked = {"status": sa.bindparam("status"), "attempts": sa.bindparam("attempts"),
                  "message_id": sa.bindparam("message_id"), "error": sa.bindparam("error"),
                  "changed": sa.bindparam("changed"), "lease_until": None,
                  "next_attempt_at": self.now + sa.bindparam("wait", type_=sa.Float)}
        # built once, run at the driver level: a new statement per message costs more than the commit
        self.mark_any = Prepared(self.conn, deliveries.update().where(*KEY).values(marked))
        self.mark_held = Prepared(self.conn, deliveries.update().where(*KEY, *HELD).values(
            {**marked, "worker": sa.bindparam("owner")}))

    def enqueue(self, digest_id: str, now: datetime) -> int:
        """Queue the digest for every active subscriber (once); returns the number queued."""
        if self.conn.execute(sa.select(deliveries.c.subscriber_id).where(
                deliveries.c.digest_id == digest_id).limit(1)).first():
            return 0
        chosen = sa.select(sa.literal(digest_id), subscribers.c.id, sa.literal("queued"), sa.literal(0),
                           sa.literal(_iso(now))).where(subscribers.c.status == "active")
        self.conn.execute(deliveries.insert().from_select(
            ["digest_id", "subscriber_id", "status", "attempts", "changed"], chosen))
        # counted, not the rowcount: psycopg reports -1 for an INSERT ... SELECT built by SQLAlchemy
        queued = sa.select(sa.func.count()).where(deliveries.c.digest_id == digest_id)
        self._analyze()
        return int(self.conn.execute(queued).scalar_one())

    def _analyze(self) -> None:
        """PostgreSQL's planner learns that the digest's rows are there (ANALYZE sees this transaction's own
        rows). Without it, the statistics of a table that just grew by a whole list say the digest has a few
        rows, and every claim sorts all its pending rows (a bitmap scan, then a sort: 10 ms a claim at
        20,000 rows, growing with the list) instead of reading the next ones in key order (under 1 ms)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("ANALYZE deliveries")

    def unfinished(self) -> list[str]:
        """Digests with messages not yet sent, oldest first."""
        query = (sa.select(deliveries.c.digest_id).where(deliveries.c.status.in_(PENDING))
                 .group_by(deliveries.c.digest_id).order_by(deliveries.c.digest_id))
        ids = list(self.conn.execute(query).scalars())
        created = dict(self.conn.execute(sa.select(digests.c.id, digests.c.created)).all())
        return sorted(ids, key=lambda i: (created.get(i, ""), i))

    def pending_count(self) -> int:
        """Messages still to send, over every digest."""
        query = sa.select(sa.func.count()).where(deliveries.c.status.in_(PENDING))
        return int(self.conn.execute(query).scalar() or 0)

    def pending(self, digest_id: str) -> Iterator[Pending]:
        """Rows still to send, by subscriber id, a batch at a time (never all in memory), whoever holds them."""
        after = ""
        while True:
            query = (sa.select(deliveries.c.subscriber_id, subscribers.c.address, subscribers.c.name,
                               subscribers.c.status, deliveries.c.attempts)
                     .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id, isouter=True)
                     .where(deliveries.c.digest_id == digest_id, deliveries.c.status.in_(PENDING),
                            deliveries.c.subscriber_id > after)
                     .order_by(deliveries.c.subscriber_id).limit(BATCH))
            rows = self.conn.execute(query).all()
            if not rows:
                return
            for sid, address, name, status, attempts in rows:
                yield Pending(digest_id, sid, address or "", name or "", status or "forgotten", attempts)
            after = rows[-1][0]

    # --- claims and leases --------------------------------------------------------------------------------------

    def _claimable(self, worker: str | sa.BindParameter[str], table: sa.FromClause = deliveries
                   ) -> sa.ColumnElement[bool]:
        """Pending, due, and held by nobody (no lease, or an expired one); a row this worker gave up on for its
        run (its id, no lease) is left to others, one it holds without knowing it (a lost commit) is taken."""
        d = table.c
        free = sa.or_(sa.and_(d.lease_until.is_(None), sa.or_(d.worker.is_(None), d.worker != worker)),
                      sa.and_(d.lease_until.is_not(None), sa.or_(d.lease_until < self.now, d.worker == worker)))
        return sa.and_(d.status.in_(PENDING), sa.or_(d.next_attempt_at.is_(None), d.next_attempt_at <= self.now),
                       free)

    def claim(self, digest_id: str, worker: str, lease: float, limit: int, after: str = "") -> list[Pending]:
        """Take up to `limit` claimable rows of the digest after subscriber id `after`, by subscriber id, under
        a lease of `lease` seconds: one UPDATE over a SELECT ... FOR UPDATE SKIP LOCKED (atomic even on a
        connection that commits each statement), then the subscribers' names and addresses. Not committed."""
        if self._claims is None:
            self._claims = self._claim_statements()
        take, people_of = self._claims
        taken: dict[str, int] = dict(self.conn.execute(take, {
            "cd": digest_id, "ca": after, "cw": worker, "cl": lease, "cn": limit}).all())
        if not taken:
            return []
        people = {row[0]: (row[1], row[2], row[3]) for row in self.conn.execute(people_of, {"ids": list(taken)})}
        return [Pending(digest_id, sid, *self._person(people.get(sid)), taken[sid]) for sid in sorted(taken)]

    def _claim_statements(self) -> tuple[sa.Update, sa.Select[str, str, str, str]]:
        """The claim's two statements, built once with bound parameters (building them costs more than
        running them): the UPDATE over SELECT ... FOR UPDATE SKIP LOCKED, and the subscribers it took."""
        d, pick = deliveries.c, deliveries.alias("pick")
        chosen = (sa.select(pick.c.subscriber_id)
                  .where(pick.c.digest_id == sa.bindparam("cd"), pick.c.subscriber_id > sa.bindparam("ca"),
                         self._claimable(sa.bindparam("cw", type_=sa.String), pick))
                  .order_by(pick.c.subscriber_id).limit(sa.bindparam("cn", type_=sa.Integer)))
        take = (deliveries.update().where(d.digest_id == sa.bindparam("cd"),
                                          d.subscriber_id.in_(skip_locked(chosen, self.conn).scalar_subquery()))
                .values(worker=sa.bindparam("cw"), lease_until=self.now + sa.bindparam("cl", type_=sa.Float))
                .returning(d.subscriber_id, d.attempts))
        people = sa.select(subscribers.c.id, subscribers.c.address, subscribers.c.name, subscribers.c.status).where(
            subscribers.c.id.in_(sa.bindparam("ids", expanding=True)))
        return take, people

    @staticmethod
    def _person(row: tuple[str, str, str] | None) -> tuple[str, str, str]:
        """(address, name, status) of a subscriber; a forgotten one (row deleted) has none."""
        return (row[0] or "", row[1] or "", row[2] or "forgotten") if row else ("", "", "forgotten")

    def renew(self, digest_id: str, ids: Collection[str], worker: str, lease: float) -> set[str]:
        """Extend the lease of the rows of `ids` the worker still holds; returns those (the others were taken
        by another worker after the lease ran out). Not committed."""
        if not ids:
            return set()
        d = deliveries.c
        result = self.conn.execute(deliveries.update().where(
            d.digest_id == digest_id, d.subscriber_id.in_(list(ids)), d.worker == worker, d.lease_until.is_not(None),
            d.status.in_(PENDING)).values(lease_until=self.now + lease).returning(d.subscriber_id))
        return set(result.scalars())

    def release(self, digest_id: str, ids: Collection[str], worker: str) -> None:
        """Give back the rows of `ids` the worker holds and did not try (a stop): claimable at once. Not
        committed."""
        if ids:
            d = deliveries.c
            self.conn.execute(deliveries.update().where(
                d.digest_id == digest_id, d.subscriber_id.in_(list(ids)), d.worker == worker,
                d.lease_until.is_not(None), d.status.in_(PENDING)).values(worker=None, lease_until=None))

    def release_all(self) -> int:
        """Free every lease (only for the one sender of an SQLite file, under the run lock: a lease there is a
        dead run's). Not committed; returns the rows freed."""
        d = deliveries.c
        result = self.conn.execute(deliveries.update().where(d.status.in_(PENDING), d.lease_until.is_not(None))
                                   .values(worker=None, lease_until=None))
        return int(result.rowcount or 0)

    def next_wait(self, worker: str, skip: Collection[str] = ()) -> float | None:
        """Seconds until a pending row may be claimable by `worker` (0: now): a row held by another until its
        lease ends, a refused row until its retry time. None: nothing is left for this worker (every pending
        row is finished, or given up by it in this run, or in a digest of `skip`)."""
        d = deliveries.c
        due = sa.case((sa.and_(d.lease_until.is_not(None), d.worker != worker), d.lease_until),
                      else_=sa.func.coalesce(d.next_attempt_at, 0.0))
        mine = sa.and_(d.worker == worker, d.lease_until.is_(None))
        query = sa.select(sa.func.count(), sa.func.min(due) - self.now).where(
            d.status.in_(PENDING), sa.not_(sa.func.coalesce(mine, False)), d.digest_id.not_in(list(skip)))
        waiting, seconds = self.conn.execute(query).one()
        return None if not waiting else max(0.0, float(seconds or 0.0))

    # --- outcomes -----------------------------------------------------------------------------------------------

    def mark(self, item: Pending, status: str, now: datetime, *, message_id: str | None = None,
             error: str | None = None, tried: bool = True, commit: bool = True, worker: str | None = None,
             retry_in: float | None = None) -> bool:
        """Record the outcome and clear the lease; `tried`: it counts as one more attempt (not when the server
        was unreachable). `worker`: only if that worker still holds the row (else nothing changes and False
        is returned); the row keeps the worker's id (who sent it, or gave up on it for this run) unless
        `retry_in` is given: then any worker tries it again once that many seconds have passed. Committed at
        once unless `commit` is false: then the caller commits it together with what goes with it (a bounce
        and its count), with `store.checkpoint()`."""
        values = {"d": item.digest_id, "s": item.subscriber_id, "status": status,
                  "attempts": item.attempts + (1 if tried else 0), "message_id": message_id, "error": error,
                  "changed": _iso(now), "wait": retry_in}
        if worker is None:
            done = bool(self.mark_any(values))
        else:
            owner = None if retry_in is not None else worker
            done = bool(self.mark_held({**values, "w": worker, "owner": owner})) \
                or self._marked_already(item, status, owner)
        if commit and self.conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            self.store.checkpoint()  # (a connection that commits each statement has nothing to commit)
        return done

    def _marked_already(self, item: Pending, status: str, owner: str | None) -> bool:
        """After a reconnection: was this very mark committed before the connection went (not another's)?"""
        row = self.conn.execute(sa.select(deliveries.c.status, deliveries.c.worker).where(
            deliveries.c.digest_id == item.digest_id, deliveries.c.subscriber_id == item.subscriber_id)).first()
        return row is not None and owner is not None and (row[0], row[1]) == (status, owner)

    def status(self) -> list[tuple[str, dict[str, int]]]:
        """Per digest (oldest first): how many rows are in each status."""
        query = (sa.select(deliveries.c.digest_id, deliveries.c.status, sa.func.count())
                 .group_by(deliveries.c.digest_id, deliveries.c.status))
        counts: dict[str, dict[str, int]] = {}
        for digest_id, status, n in self.conn.execute(query):
            counts.setdefault(digest_id, dict.fromkeys(STATUSES, 0))[status] = n
        return sorted(counts.items())

    def problems(self, limit: int = 20) -> list[Problem]:
        """Up to `limit` rows not delivered (`failed`, `expired`) with their last error, by digest and subscriber."""
        query = (sa.select(deliveries.c.digest_id, deliveries.c.subscriber_id, subscribers.c.address,
                           deliveries.c.status, deliveries.c.attempts, deliveries.c.error)
                 .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id, isouter=True)
                 .where(deliveries.c.status.in_(("failed", "expired")))
                 .order_by(deliveries.c.digest_id, deliveries.c.subscriber_id).limit(limit))
        return [Problem(d, s, a or "", st, n, e or "") for d, s, a, st, n, e in self.conn.execute(query)]
