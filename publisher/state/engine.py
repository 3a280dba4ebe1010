"""Engines on the state database: one pooled engine per process for a database server (every store,
web request and worker of the process shares it), and the SQLite engines of `statefile` for a file.

`connect` turns a server that cannot be reached into a StateError naming the database (password hidden).

`relax_commits` turns `synchronous_commit` off for one session (a sender's journal connection, a shared rate
limit's connection): a COMMIT then returns without waiting for its WAL to reach the disk, and the server
writes it within about three `wal_writer_delay`s (0.6 s by default). The trade-off: a sender killed (even with
SIGKILL) loses nothing, since the server has the commit and every other session sees it at once; only a crash
of the PostgreSQL server itself (or of its machine) may lose the last fraction of a second of commits. For the
journal those are `sent` marks made after the SMTP server accepted the message, so such a crash makes
duplicates (those messages are sent again), never losses. `strict_commits` restores the server's setting
before the connection goes back to the pool, so that nothing else of the process commits lazily.
"""

from __future__ import annotations

import contextlib
import threading

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from publisher.errors import StateError
from publisher.state.location import StateLocation

SERVER_HINT = ("check that the PostgreSQL server is running and that the URL (user, host, database) is right; "
               "a password goes in the URL or in PGPASSWORD")
_ENGINES: dict[str, sa.Engine] = {}
_GUARD = threading.Lock()


def server_engine(location: StateLocation) -> sa.Engine:
    """The process's pooled engine on a database server (made on first use)."""
    key = location.url.render_as_string(hide_password=False)
    with _GUARD:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = sa.create_engine(location.url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                                      connect_args={"connect_timeout": 10})
            _ENGINES[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (after a fork, and between tests that restart the server)."""
    with _GUARD:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def first_line(error: BaseException) -> str:
    """The database's own words, first line only (no statement, no parameters)."""
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0] if str(error).strip() else repr(error)


def connect(location: StateLocation) -> sa.Connection:
    """A connection from the pool; a server that cannot be reached is a StateError naming the database."""
    try:
        return server_engine(location).connect()
    except OperationalError as e:
        raise StateError(f"{location}: cannot connect to the state database: {first_line(e)}", SERVER_HINT) from e


def relax_commits(conn: sa.Connection) -> None:
    """`synchronous_commit = off` for this session (see the module docstring); nothing on SQLite."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET synchronous_commit = off")


def strict_commits(conn: sa.Connection) -> None:
    """The server's own `synchronous_commit` again (a broken connection is left as it is: it is discarded)."""
    if conn.dialect.name == "postgresql" and not conn.invalidated and not conn.closed:
        with contextlib.suppress(SQLAlchemyError):
            conn.exec_driver_sql("RESET synchronous_commit")
