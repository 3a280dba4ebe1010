"""The state database file: checked before use, created only where no file exists, opened as one
connection (WAL when writing, read-only otherwise), and given the tables a newer publisher added.

An existing file that is empty, not SQLite or without the publisher schema is a StateError naming it,
never replaced: starting over would give every article a new id. `publisher.store.open_store` opens a
Store on the connection made here.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError, OperationalError, SQLAlchemyError

from publisher.errors import StateError
from publisher.state.schema import SCHEMA_VERSION, meta, metadata

log = logging.getLogger(__name__)
SQLITE_HEADER = b"SQLite format 3\x00"
RESTORE = ("restore it from a backup, or move it away to start a new state (readers will then see every "
           "article as new)")
SCHEDULER_TABLES = {"apscheduler_jobs"}  # made by `publisher schedule`'s job store; holds no publisher state


def _tables(conn: sa.Connection) -> set[str]:
    return set(conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars())


def _blank(conn: sa.Connection) -> bool:
    """No table but the scheduler's job store: `publisher schedule` made the file before any run."""
    tables = _tables(conn)
    return bool(tables) and tables <= SCHEDULER_TABLES


def _schema_version(conn: sa.Connection, path: Path) -> int:
    """The schema version of a state file; StateError when it has no publisher schema."""
    row = None
    if "meta" in _tables(conn):
        row = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
    if row is None or not str(row[0]).isdigit():
        raise StateError(f"{path}: not a publisher state database (no schema_version in a meta table)", RESTORE)
    return int(row[0])


def _temp_tables(conn: sa.Connection) -> None:
    """In a read-only run, the tables an older state lacks, as empty temporary tables (never on the file)."""
    temp = sa.MetaData()
    present = _tables(conn)
    for table in metadata.sorted_tables:
        if table.name not in present:
            columns = [sa.Column(c.name, c.type, primary_key=c.primary_key) for c in table.columns]
            sa.Table(table.name, temp, *columns, prefixes=["TEMPORARY"])
    temp.create_all(conn)


def _check_file(path: Path) -> None:
    """An existing state file must at least be an SQLite database: never start over on top of it."""
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError as e:
        raise StateError(f"{path}: cannot read the state database: {e.strerror}",
                         "check that paths.state names a readable file") from e
    if not head:
        raise StateError(f"{path}: the state database is an empty file", RESTORE)
    if head != SQLITE_HEADER:
        raise StateError(f"{path}: the state database is not an SQLite database", RESTORE)


def _connect(path: Path, *, write: bool) -> sqlite3.Connection:
    """A connection to the file. WAL: readers never wait for a writer, and a commit per sent message
    stays cheap. Read-only runs open the file read-only, so they can never take the write lock."""
    if not write:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _engine(path: Path | None, *, write: bool) -> sa.Engine:
    """An engine on the file, or on memory (`path` None)."""
    if path is None:
        return sa.create_engine("sqlite://")
    return sa.create_engine("sqlite://", creator=lambda: _connect(path, write=write), poolclass=sa.pool.NullPool)


def _inspect(path: Path) -> bool:
    """Check an existing state file without changing it; True when it is blank (see `_blank`)."""
    _check_file(path)
    engine = _engine(path, write=False)
    try:
        with engine.connect() as conn:
            if _blank(conn):
                return True
            version = _schema_version(conn, path)
    except DatabaseError as e:
        raise StateError(f"{path}: state database unusable: {e.orig}", RESTORE) from e
    finally:
        engine.dispose()
    if version > SCHEMA_VERSION:
        raise StateError(f"{path}: state database has schema version {version}, newer than this publisher "
                         f"({SCHEMA_VERSION})", "upgrade publisher")
    return False


def _adopt(path: Path) -> None:
    """Give a blank file the schema, in one write transaction (a concurrent run does it at most once)."""
    engine = _engine(path, write=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            if _blank(conn):
                metadata.create_all(conn)
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            conn.commit()
    finally:
        engine.dispose()


def _create(path: Path) -> None:
    """Make a new state database at `path`, complete or not at all: the schema is built in a file beside
    it, which is then linked into place only if nothing is there yet (another process may have won)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    engine = _engine(temp, write=True)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        engine.dispose()
        try:
            os.link(temp, path)
        except FileExistsError:  # made meanwhile: by another run (ours), or by the scheduler's job store
            log.info("%s: made by another process meanwhile; using it", path)
            if _inspect(path):
                _adopt(path)
        except OSError:  # no hard links here: a rename, which could replace a file made meanwhile
            if not path.exists():
                os.replace(temp, path)
    except (OSError, SQLAlchemyError) as e:
        raise StateError(f"{path}: cannot create the state database: {getattr(e, 'orig', None) or e}",
                         "check that the folder of paths.state exists and is writable") from e
    finally:
        engine.dispose()
        for leftover in (temp, temp.with_name(temp.name + "-wal"), temp.with_name(temp.name + "-shm")):
            leftover.unlink(missing_ok=True)


@contextmanager
def state_connection(path: Path, *, write: bool) -> Iterator[tuple[sa.Connection, Path | None]]:
    """A connection to the state database at `path`, created only where no file exists, and the file
    it is on (None: memory, for a read-only run on a missing file). A database error raised while it is
    open, by the caller too, becomes a StateError naming the file."""
    exists = path.exists()
    blank = exists and _inspect(path)
    if write and blank:
        _adopt(path)
    elif write and not exists:
        _create(path)
    where = path if exists or write else None
    engine = _engine(where, write=write)
    try:
        with engine.connect() as conn:
            yield conn, where
    except (OperationalError, DatabaseError) as e:
        raise StateError(f"{path}: state database unusable: {e.orig}",
                         "check the file, or move it away to start a new state") from e
    finally:
        engine.dispose()


def prepare_tables(conn: sa.Connection, where: Path | None, *, write: bool) -> None:
    """Tables a newer publisher added to a (checked) state file: created, or in a read-only run made
    as empty temporary tables; a state in memory (`where` None) gets the whole schema."""
    if where is None:
        metadata.create_all(conn)
        conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
    elif write:
        metadata.create_all(conn)
    else:
        _temp_tables(conn)
