"""What a sender needs to share the journal with others: its id and its row in `workers` (for
`send --status`), and patience with a database server that goes away (restarted) in the middle of a run.

A worker's id is host:pid:random (the random part tells apart two runs whose pids were reused). Its row
says how many rows it claimed, sent and failed, and when it was last seen (database clock); it is updated
with each claim and lease renewal, in the same transaction, so it costs no extra commit.

`Patient` runs a piece of database work again after the server went away: it waits (0.5 s, doubling to
5 s), gets a new connection from the pool (which checks it first) and tries once more, for up to a minute;
then it gives up with a StateError naming the database (password hidden). Only a server's state is
worth waiting for: an SQLite file's errors are raised at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError, PendingRollbackError, SQLAlchemyError

from publisher.deliver.journal import Journal, Pending
from publisher.errors import ConfigError, PublisherError, StateError
from publisher.state.dialect import now as db_now
from publisher.state.engine import SERVER_HINT, first_line, relax_commits, strict_commits
from publisher.state.location import StateLocation
from publisher.state.schema import workers
from publisher.store import Store

if TYPE_CHECKING:
    from publisher.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
CLAIM = 50  # rows per claim: one claim (and one lease renewal) per batch, one commit per message
LEASE = 30.0  # seconds a claim holds its rows unless renewed; a dead worker's rows return after it
RETRY_FIRST, RETRY_MOST, RETRY_FOR = 0.5, 5.0, 60.0  # waiting for a database server that went away
SQLITE_WORKERS = ("--worker: SQLite is one machine: several workers need a PostgreSQL state "
                  "(paths.state = postgresql+psycopg://...)")


def check_worker_state(location: StateLocation) -> None:
    """Several workers share one database server; an SQLite file is refused at once."""
    if location.is_sqlite:
        raise ConfigError(SQLITE_WORKERS, "or run one 'publisher send' without --worker")


class Limit(Protocol):
    """The shared rate limit (ratelimit.SharedLimit): acquire() blocks until one message to `domain` may go;
    False when stopped."""

    def acquire(self, domain: str) -> bool: ...

    def close(self) -> None: ...


class Unlimited:
    def acquire(self, domain: str) -> bool:
        return True

    def close(self) -> None:
        pass


def shared_limit(settings: Settings, stop: Callable[[], bool]) -> Limit:
    """`email.rate` and `email.domain_rate` for every sender of the state together (none set: no limit)."""
    if not (settings.email.rate or settings.email.domain_rate):
        return Unlimited()
    from publisher.deliver.ratelimit import SharedLimit

    return SharedLimit(settings.paths.state, settings.email.rate, settings.email.domain_rate, stop=stop)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One sender as `send --status` shows it; `ago`: seconds since it was last seen (database clock)."""

    id: str
    state: str  # running, finished, stopped
    claimed: int
    sent: int
    failed: int
    ago: float


class Registry:
    """The worker's own row in `workers`. Nothing here commits: the caller's next commit carries it."""

    def __init__(self, conn: sa.Connection, worker_id: str) -> None:
        self.conn, self.id = conn, worker_id
        self.now = db_now(conn)

    def register(self) -> None:
        host, _, rest = self.id.partition(":")
        self.conn.execute(workers.insert().values(
            id=self.id, host=host, pid=int(rest.partition(":")[0]), started=self.now, last_seen=self.now,
            claimed=0, sent=0, failed=0, state="running"))

    def touch(self, claimed: int, sent: int, failed: int, state: str = "running") -> None:
        self.conn.execute(workers.update().where(workers.c.id == self.id).values(
            last_seen=self.now, claimed=claimed, sent=sent, failed=failed, state=state))


def list_workers(conn: sa.Connection, limit: int = 20) -> list[WorkerRow]:
    """The `limit` senders seen last, most recent first (none on a state made before the table existed)."""
    if not sa.inspect(conn).has_table("workers"):
        return []
    w = workers.c
    query = (sa.select(w.id, w.state, w.claimed, w.sent, w.failed, db_now(conn) - w.last_seen)
             .order_by(w.last_seen.desc(), w.id).limit(limit))
    return [WorkerRow(i, s, c, n, f, max(0.0, float(a))) for i, s, c, n, f, a in conn.execute(query)]


def _went_away(error: Exception) -> bool:
    """A lost or refused connection (server restarted, shutting down, starting up), not a bad statement."""
    if isinstance(error, PendingRollbackError):
        return True
    return isinstance(error, OperationalError) or (isinstance(error, DBAPIError) and error.connection_invalidated)


class Patient:
    """Runs database work on the store's connection, again after the server went away (see the module)."""

    def __init__(self, store: Store, location: StateLocation, *, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, patience: float = RETRY_FOR) -> None:
        self.store, self.location = store, location
        self.sleep, self.monotonic, self.patience = sleep, monotonic, patience
        self.server = store.conn.dialect.name != "sqlite"
        self.reconnections = 0
        self.autocommitting = False

    def autocommit(self) -> None:
        """From now on each statement commits itself (a server's state, while sending): a mark is then one
        round trip instead of three (BEGIN, UPDATE, COMMIT), and a commit does not wait for the disk
        (`synchronous_commit = off`, see state/engine.py: a killed sender loses nothing; a crash of the
        server itself may make duplicates, never losses). Several statements that go together are wrapped
        in `atomic`. `strict` undoes it before the connection goes back to the pool."""
        self.store.trans.commit()
        self.autocommitting = True
        self._begin()

    def _begin(self) -> None:
        """The store's (next) transaction; when autocommitting, on a connection set for it."""
        if self.autocommitting:  # a new DBAPI connection after a reconnection: set it again
            self.store.conn.execution_options(isolation_level="AUTOCOMMIT")
        self.store.trans = self.store.conn.begin()
        if self.autocommitting:
            relax_commits(self.store.conn)

    def strict(self) -> None:
        """The connection's commits wait for the disk again (before the store ends)."""
        if self.autocommitting:
            strict_commits(self.store.conn)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """The block's statements in one transaction, committed at its end (BEGIN ... COMMIT when each
        statement commits itself; else the store's own transaction)."""
        if not self.autocommitting:
            yield
            self.store.checkpoint()
            return
        self.store.conn.exec_driver_sql("BEGIN")
        try:
            yield
        except BaseException:
            with contextlib.suppress(SQLAlchemyError):
                self.store.conn.exec_driver_sql("ROLLBACK")
            raise
        self.store.conn.exec_driver_sql("COMMIT")

    def __call__(self, work: Callable[[], T]) -> T:
        delay, deadline, broken = RETRY_FIRST, None, False
        while True:
            try:
                if broken:
                    self._new_transaction()
                return work()
            except SQLAlchemyError as e:
                if not (self.server and _went_away(e)):
                    raise
                deadline = deadline if deadline is not None else self.monotonic() + self.patience
                if self.monotonic() >= deadline:
                    raise StateError(f"{self.location}: the state database is gone for more than "
                                     f"{self.patience:g} s: {first_line(e)}", SERVER_HINT) from e
                log.warning("%s: state database unreachable (%s); trying again in %.1f s", self.location,
                            first_line(e), delay)
                self.sleep(delay)
                delay, broken = min(delay * 2, RETRY_MOST), True

    def _new_transaction(self) -> None:
        """Drop the broken transaction and begin another: that reconnects through the pool (or raises)."""
        self.reconnections += 1
        with contextlib.suppress(SQLAlchemyError):
            self.store.trans.rollback()
        self._begin()
        self.store.conn.execute(sa.select(1))


class Claims:
    """One worker's claims: the batch in hand (one digest's rows), its lease, renewed once a third of it has
    passed, and the worker's row in `workers`, updated in the same transactions. `counts`: (sent, failed)
    so far, for that row."""

    def __init__(self, journal: Journal, db: Patient, worker: str, lease: float,
                 monotonic: Callable[[], float]) -> None:
        self.journal, self.db, self.worker, self.lease, self.monotonic = journal, db, worker, lease, monotonic
        self.registry = Registry(journal.conn, worker)
        self.claimed = self.claims = self.lost = 0
        self.held: tuple[str, set[str]] = ("", set())  # the digest and rows of the batch in hand
        self.renewed = 0.0  # monotonic() at the last claim or renewal

    def register(self) -> None:
        def work() -> None:
            self.registry.register()
            self._commit(None)

        self.db(work)

    def _commit(self, value: T) -> T:
        self.journal.store.checkpoint()
        return value

    def claim(self, digest_id: str, after: str, counts: tuple[int, int]) -> list[Pending]:
        """The next batch of the digest after subscriber id `after` (empty: none claimable now)."""
        def work() -> list[Pending]:
            rows = self.journal.claim(digest_id, self.worker, self.lease, CLAIM, after)
            self.registry.touch(self.claimed + len(rows), *counts)
            return self._commit(rows)

        rows = self.db(work)
        if rows:
            self.claimed, self.claims = self.claimed + len(rows), self.claims + 1
            self.held, self.renewed = (digest_id, {r.subscriber_id for r in rows}), self.monotonic()
            log.info("worker %s: claimed %d rows of digest %s", self.worker, len(rows), digest_id)
        return rows

    def holds(self, item: Pending, counts: tuple[int, int]) -> bool:
        """Whether the worker still holds the row (renewing the batch's lease when due)."""
        digest_id, held = self.held
        if self.monotonic() - self.renewed >= self.lease / 3:
            def work() -> set[str]:
                kept = self.journal.renew(digest_id, held, self.worker, self.lease)
                self.registry.touch(self.claimed, *counts)
                return self._commit(kept)

            kept = self.db(work)
            for lost in sorted(held - kept):
                self.lose(Pending(digest_id, lost, "", "", "", 0), "its lease ran out before it was tried")
            self.held, self.renewed = (digest_id, kept), self.monotonic()
        return item.subscriber_id in self.held[1]

    def done(self, item: Pending) -> None:
        self.held[1].discard(item.subscriber_id)

    def lose(self, item: Pending, why: str) -> None:
        self.lost += 1
        log.warning("worker %s: digest %s: subscriber %s: %s; another worker took it over, it is not "
                    "recorded here", self.worker, item.digest_id, item.subscriber_id, why)

    def close(self, stopped: bool, counts: tuple[int, int]) -> None:
        """Give back the rows not tried (a stop, an error) and record how the worker ended."""
        digest_id, held = self.held
        state = "stopped" if stopped or held else "finished"

        def work() -> None:
            self.journal.release(digest_id, held, self.worker)
            self.registry.touch(self.claimed, *counts, state=state)
            self._commit(None)

        try:
            self.db(work)
        except (PublisherError, SQLAlchemyError) as e:  # its leases run out by themselves
            log.warning("worker %s: could not record its end: %s", self.worker, first_line(e))
        log.info("worker %s: %s; %d claims, %d rows claimed, %d taken over by others, %d reconnections",
                 self.worker, state, self.claims, self.claimed, self.lost, self.db.reconnections)
