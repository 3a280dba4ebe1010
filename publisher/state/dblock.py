"""The run lock of a state on a database server: a PostgreSQL advisory lock, held by a connection of its
own (outside the pool: a pooled connection could be recycled, silently dropping the lock). The server
releases it when that connection ends in any way (a killed process, a lost machine), like flock does for
a file. The connection's application_name says who holds it, so a process that finds the lock taken can
name the holder.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from publisher.errors import StateError
from publisher.state.engine import SERVER_HINT, first_line
from publisher.state.location import StateLocation

NAMESPACE = 0x7075626C  # "publ": the first key of every publisher advisory lock
RUN = 1  # (2 was the scheduler's: schedulers now elect a leader with a lease, publisher.state.leader)
POLL = 0.2
HOLDER = sa.text("SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON "
                 "a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = :ns AND l.objid = :key "
                 "AND l.granted LIMIT 1")


def lock_engine(location: StateLocation, what: str) -> sa.Engine:
    """An engine making one unpooled connection whose application_name names this process and `what`."""
    name = f"publisher {what} (pid {os.getpid()} on {socket.gethostname()})"[:63]
    return sa.create_engine(location.url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT",
                            connect_args={"application_name": name, "connect_timeout": 10})


def holder(conn: sa.Connection, key: int) -> str:
    """Who holds the lock `key`, in words."""
    row = conn.execute(HOLDER, {"ns": NAMESPACE, "key": key}).first()
    if row is None:
        return "another process is running on this state"
    return f"{row[0] or 'another process'} is running on this state since {row[1]:%Y-%m-%d %H:%M:%S %Z}"


@contextmanager
def hold(location: StateLocation, key: int, wait: float, what: str, *,
         busy: Callable[[str], Exception], stop: Callable[[], bool] | None = None) -> Iterator[None]:
    """Hold advisory lock `key` for `what`, waiting up to `wait` seconds; else raise busy(who holds it)."""
    engine = lock_engine(location, what)
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + max(wait, 0.0)
            while not conn.execute(sa.select(sa.func.pg_try_advisory_lock(NAMESPACE, key))).scalar():
                stopping = stop is not None and stop()
                if stopping or time.monotonic() >= deadline:
                    waited = " (stopping)" if stopping else f" after waiting {wait:g} s" if wait > 0 else ""
                    raise busy(f"cannot start {what}{waited}: {holder(conn, key)} (lock on {location})")
                time.sleep(POLL)
            yield
    except OperationalError as e:
        raise StateError(f"{location}: cannot hold the run lock: {first_line(e)}", SERVER_HINT) from e
    finally:
        engine.dispose()  # closing the connection releases the lock
