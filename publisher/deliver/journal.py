"""The delivery journal: one row per (digest, subscriber), so every digest reaches every subscriber
exactly once. Rows are queued in the transaction that records the digest; a row becomes `sent` only
after the transport accepted the message, and each change is committed at once (a crash loses at
most the message in flight, which the next run sends again).

Statuses: `queued` (never tried) and `failed` (tried, not delivered: refused for now, unreachable
server, or the message could not be built) are pending: every run tries them again. `expired` is
a `failed` row given up for good after its maximum number of tries (the name Postfix gives mail
that stayed queued too long); `sent`, `bounced` (refused for good, SMTP 5xx) and `cancelled` (the
subscriber left) are final too. `error` keeps the last reason, `attempts` the tries so far.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from publisher.state.schema import deliveries, digests, subscribers
from publisher.store import Store

BATCH = 500
STATUSES = ("queued", "sent", "failed", "expired", "bounced", "cancelled")
PENDING = ("queued", "failed")  # the statuses a run tries (again)
MARK = (deliveries.update()  # built once: a new statement per message costs more than the commit
        .where(deliveries.c.digest_id == sa.bindparam("d"), deliveries.c.subscriber_id == sa.bindparam("s"))
        .values(status=sa.bindparam("status"), attempts=sa.bindparam("attempts"),
                message_id=sa.bindparam("message_id"), error=sa.bindparam("error"), changed=sa.bindparam("changed")))


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


class Journal:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn

    def enqueue(self, digest_id: str, now: datetime) -> int:
        """Queue the digest for every active subscriber (once); returns the number queued."""
        if self.conn.execute(sa.select(deliveries.c.subscriber_id).where(
                deliveries.c.digest_id == digest_id).limit(1)).first():
            return 0
        chosen = sa.select(sa.literal(digest_id), subscribers.c.id, sa.literal("queued"), sa.literal(0),
                           sa.literal(_iso(now))).where(subscribers.c.status == "active")
        result = self.conn.execute(deliveries.insert().from_select(
            ["digest_id", "subscriber_id", "status", "attempts", "changed"], chosen))
        return int(result.rowcount or 0)

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
        """Rows still to send, by subscriber id, a batch at a time (never all in memory)."""
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

    def mark(self, item: Pending, status: str, now: datetime, *, message_id: str | None = None,
             error: str | None = None, tried: bool = True, commit: bool = True) -> None:
        """Record the outcome; `tried`: it counts as one more attempt (not when the server was unreachable).
        Committed at once unless `commit` is false: then the caller commits it together with what goes with
        it (a bounce and its count), with `store.checkpoint()`."""
        self.conn.execute(MARK, {"d": item.digest_id, "s": item.subscriber_id, "status": status,
                                 "attempts": item.attempts + (1 if tried else 0), "message_id": message_id,
                                 "error": error, "changed": _iso(now)})
        if commit:
            self.store.checkpoint()

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
