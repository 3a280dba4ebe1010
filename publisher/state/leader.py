"""Leadership among processes sharing one state database on a server: one `publisher schedule` leads, the
others wait. The leader holds a row of `leases` (name, holder, epoch, expires), on the database's clock:

- taken when absent or expired, with `epoch + 1`: every leader has an epoch no earlier leader had (a fence);
- renewed every ttl/3 by a thread of its own (`Term`); lost when a renewal finds the row changed or expired,
  or when no renewal succeeded for a whole ttl (the server unreachable): then `held()` is false at once;
- released on a clean stop (expires = now), so a waiting process takes over without waiting out the ttl.

The `runs` table makes a scheduled run happen once: the leader claims the run (id = the fire time) with
its epoch, and every later write of that row is `WHERE epoch = :mine`; a run left `running` or `published`
by an earlier epoch (its leader died) is taken over by the next leader, which finishes it.
"""

from __future__ import annotations

import concurrent.futures
import enum
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from publisher.errors import PublisherError
from publisher.state.dialect import now
from publisher.state.engine import connect
from publisher.state.location import StateLocation
from publisher.state.schema import leases, runs

SCHEDULER = "scheduler"
RUNNING, PUBLISHED, DONE = "running", "published", "done"


def holder_id() -> str:
    """Who this process is, in a lease: host:pid:random (a restarted process with the same pid differs)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Lease:
    """The lease row as read, with the database's clock at the time of reading."""

    holder: str
    epoch: int
    expires: float
    now: float

    @property
    def live(self) -> bool:
        return self.expires > self.now


def current(conn: sa.Connection, name: str = SCHEDULER) -> Lease | None:
    row = conn.execute(sa.select(leases.c.holder, leases.c.epoch, leases.c.expires, now(conn))
                       .where(leases.c.name == name)).first()
    return None if row is None else Lease(str(row[0]), int(row[1]), float(row[2]), float(row[3]))


def take(conn: sa.Connection, me: str, ttl: float, name: str = SCHEDULER) -> int | None:
    """Take the lease if it is absent or expired: the new epoch; None while another holds it. Commits."""
    clock = now(conn)
    with conn.begin():
        row = conn.execute(leases.update().where(leases.c.name == name, leases.c.expires <= clock)
                           .values(holder=me, epoch=leases.c.epoch + 1, expires=clock + ttl)
                           .returning(leases.c.epoch)).first()
        if row is not None:
            return int(row[0])
        try:
            with conn.begin_nested():
                conn.execute(leases.insert().values(name=name, holder=me, epoch=1, expires=clock + ttl))
        except IntegrityError:  # another process made the row first: it leads
            return None
        return 1


def renew(conn: sa.Connection, me: str, epoch: int, ttl: float, name: str = SCHEDULER) -> bool:
    """Extend the lease by ttl from now if it is still ours and not expired. Commits."""
    clock = now(conn)
    with conn.begin():
        if conn.dialect.name == "postgresql":  # a server that hangs must not hold the renewal past the lease
            conn.execute(sa.text(f"SET LOCAL statement_timeout = {max(1, int(ttl * 1000 / 3))}"))
        done = conn.execute(leases.update().where(leases.c.name == name, leases.c.holder == me,
                                                  leases.c.epoch == epoch, leases.c.expires > clock)
                            .values(expires=clock + ttl))
        return done.rowcount == 1


def release(conn: sa.Connection, me: str, epoch: int, name: str = SCHEDULER) -> None:
    """Give the lease up (expired now; the epoch stays, so the next leader's is larger). Commits."""
    with conn.begin():
        conn.execute(leases.update().where(leases.c.name == name, leases.c.holder == me, leases.c.epoch == epoch)
                     .values(expires=now(conn)))


# --- runs ------------------------------------------------------------------------------------------

class Claim(enum.Enum):
    """What a leader is to do with a run it claims."""

    NEW = "new"  # nobody started it: publish and deliver
    PUBLISH = "publish"  # an earlier leader died before publishing had been recorded: publish (idempotent), deliver
    DELIVER = "deliver"  # an earlier leader published it and died: finish the delivery from the journal
    DONE = "done"  # already done: skip
    BUSY = "busy"  # this epoch already claimed it (a second submission): skip
    LOST = "lost"  # this process no longer leads: skip


def claim(conn: sa.Connection, run_id: str, me: str, epoch: int, name: str = SCHEDULER) -> tuple[Claim, int | None]:
    """Claim the run `run_id` for the leader (me, epoch), fenced by the lease row (read FOR SHARE, so a
    new leader cannot take the lease until this claim is committed). Also the epoch of the run's earlier
    leader when it is taken over. Commits."""
    clock = now(conn)
    with conn.begin():
        lease = conn.execute(sa.select(leases.c.holder, leases.c.epoch, leases.c.expires > clock)
                             .where(leases.c.name == name).with_for_update(read=True)).first()
        if lease is None or (lease[0], int(lease[1]), bool(lease[2])) != (me, epoch, True):
            return Claim.LOST, None
        row = conn.execute(sa.select(runs.c.status, runs.c.epoch).where(runs.c.id == run_id)
                           .with_for_update()).first()
        if row is None:
            conn.execute(runs.insert().values(id=run_id, epoch=epoch, holder=me, status=RUNNING, started=clock))
            return Claim.NEW, None
        status, before = str(row[0]), int(row[1])
        if status == DONE:
            return Claim.DONE, before
        if before >= epoch:
            return Claim.BUSY, before
        conn.execute(runs.update().where(runs.c.id == run_id, runs.c.epoch == before).values(epoch=epoch, holder=me))
        return (Claim.DELIVER if status == PUBLISHED else Claim.PUBLISH), before


def mark(conn: sa.Connection, run_id: str, epoch: int, status: str) -> bool:
    """Record the run's progress, only while the run is still this epoch's (the fence). Commits."""
    values: dict[str, object] = {"status": status}
    if status == DONE:
        values["finished"] = now(conn)
    with conn.begin():
        return conn.execute(runs.update().where(runs.c.id == run_id, runs.c.epoch == epoch)
                            .values(**values)).rowcount == 1


def unfinished(conn: sa.Connection, epoch: int) -> list[str]:
    """The runs earlier leaders left unfinished (their leader died, or was stopped mid-delivery), oldest first."""
    query = sa.select(runs.c.id).where(runs.c.status != DONE, runs.c.epoch < epoch).order_by(runs.c.id)
    found = [str(row[0]) for row in conn.execute(query)]
    conn.rollback()
    return found


# --- a leadership term ----------------------------------------------------------------------------

class Term:
    """One term of leadership (an epoch), kept by a renewal thread. `held()` is false from the moment the
    lease is lost (a renewal refused) or may be lost (no renewal succeeded for a whole ttl, measured from
    the start of the last good one: the database's lease cannot have outlived that). `on_lost(reason)` is
    called once, from the renewal thread."""

    def __init__(self, location: StateLocation, me: str, epoch: int, ttl: float,
                 on_lost: Callable[[str], None]) -> None:
        self.location, self.me, self.epoch, self.ttl = location, me, epoch, ttl
        self.on_lost = on_lost
        self._valid_until = time.monotonic() + ttl  # the take just committed: at most ttl from before it
        self._lost: str | None = None
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="publisher-lease", daemon=True)

    def start(self) -> Term:
        self._thread.start()
        return self

    def held(self) -> bool:
        return self._lost is None and time.monotonic() < self._valid_until

    def _renew_once(self) -> bool:
        started = time.monotonic()
        with connect(self.location) as conn:
            ok = renew(conn, self.me, self.epoch, self.ttl)
        if ok:
            self._valid_until = started + self.ttl
        return ok

    def _keep(self) -> None:
        """Renew every ttl/3 (in a worker thread, so that a hung server cannot hide the lease's end)."""
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="publisher-renew")
        pending: concurrent.futures.Future[bool] | None = None
        next_renewal, error = time.monotonic() + self.ttl / 3, ""
        try:
            while not self._ended.wait(min(0.1, self.ttl / 20)):
                if pending is not None and pending.done():
                    error = _outcome(pending)
                    if error == REFUSED:
                        return self._lose("the lease was taken over or expired (renewal refused)")
                    pending, next_renewal = None, time.monotonic() + self.ttl / 3
                if not self.held():
                    return self._lose(f"no renewal succeeded for {self.ttl:g} s ({error or 'no answer'})")
                if pending is None and time.monotonic() >= next_renewal:
                    pending = pool.submit(self._renew_once)
        finally:
            pool.shutdown(wait=False)

    def _lose(self, reason: str) -> None:
        self._lost = reason
        self.on_lost(reason)

    def end(self) -> None:
        """Stop renewing, and release the lease if it is still held (a waiting process takes over at once)."""
        self._ended.set()
        if self._thread.is_alive():
            self._thread.join(self.ttl)
        if self._lost is not None:
            return
        self._lost = "ended"
        try:
            with connect(self.location) as conn:
                release(conn, self.me, self.epoch)
        except (PublisherError, SQLAlchemyError):  # it expires by itself
            pass


REFUSED = "refused"


def _outcome(future: concurrent.futures.Future[bool]) -> str:
    """'' for a good renewal, REFUSED when the lease is no longer ours, else the error in words."""
    try:
        return "" if future.result() else REFUSED
    except (PublisherError, SQLAlchemyError) as e:
        return str(e).splitlines()[0] if str(e) else repr(e)
