"""The state database file: checked before use, created only where no file exists, upgraded in place
when older (by the migrations, see `publisher.state.migrate`), and opened as one connection (WAL when
writing, read-only otherwise). A read-only run never writes an older file: it reads it through temporary
tables and views that add what the file lacks.

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
from publisher.state.migrate import Version, check, read_version, upgrade
from publisher.state.schema import SCHEMA_VERSION, meta, metadata

log = logging.getLogger(__name__)
SQLITE_HEADER = b"SQLite format 3\x00"
RESTORE = ("restore it from a backup, or move it away to start a new state (readers will then see every "
           "article as new)")


def _temp_tables(conn: sa.Connection) -> None:
    """In a read-only run on an older state, what it lacks, never on the file: a missing table as an empty
    temporary table, a table missing columns as a temporary view of it adding them as NULL (SQLite looks in
    `temp` before `main`, so every query of the run reads them as if the file were upgraded)."""
    temp = sa.MetaData()
    present = set(sa.inspect(conn).get_table_names())
    views: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in present:
            columns = [sa.Column(c.name, c.type, primary_key=c.primary_key) for c in table.columns]
            sa.Table(table.name, temp, *columns, prefixes=["TEMPORARY"])
            continue
        have = {column["name"] for column in sa.inspect(conn).get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in have]
        if missing:
            extra = ", ".join(f'NULL AS "{name}"' for name in missing)
            views.append(f'CREATE TEMPORARY VIEW "{table.name}" AS SELECT *, {extra} FROM main."{table.name}"')
    temp.create_all(conn)
    for view in views:
        conn.exec_driver_sql(view)


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


def _inspect(path: Path) -> Version:
    """Check an existing state file without changing it: where it stands (StateError when it is not ours,
    or newer than this publisher)."""
    _check_file(path)
    engine = _engine(path, write=False)
    try:
        with engine.connect() as conn:
            version = read_version(conn)
    except DatabaseError as e:
        raise StateError(f"{path}: state database unusable: {e.orig}", RESTORE) from e
    finally:
        engine.dispose()
    check(version, str(path), RESTORE)
    return version


def _migrate(path: Path) -> None:
    """Give a blank or older file the schema at HEAD, in one write transaction (BEGIN IMMEDIATE: of runs
    doing this at once, the first upgrades and the others find it done). Any failure leaves it untouched."""
    engine = _engine(path, write=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            version = read_version(conn)
            check(version, str(path), RESTORE)
            if not version.current:
                log.info("%s: upgrading the state database", path)
                upgrade(conn, version)
            conn.commit()
    except DatabaseError as e:
        raise StateError(f"{path}: cannot upgrade the state database: {e.orig}",
                         "check that the file and its folder are writable") from e
    finally:
        engine.dispose()


def _build(temp: Path) -> None:
    """The schema at HEAD in a new file `temp`, by the migrations, in one transaction."""
    engine = _engine(temp, write=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            upgrade(conn, read_version(conn))
            conn.commit()
    finally:
        engine.dispose()


def _create(path: Path) -> None:
    """Make a new state database at `path`, complete or not at all: the schema is built in a file beside
    it, which is then linked into place only if nothing is there yet (another process may have won)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    try:
        _build(temp)
        try:
            os.link(temp, path)
        except FileExistsError:  # made meanwhile: by another run (ours), or by the scheduler's job store
            log.info("%s: made by another process meanwhile; using it", path)
            if not _inspect(path).current:
                _migrate(path)
        except OSError:  # no hard links here: a rename, which could replace a file made meanwhile
            if not path.exists():
                os.replace(temp, path)
    except (OSError, SQLAlchemyError) as e:
        raise StateError(f"{path}: cannot create the state database: {getattr(e, 'orig', None) or e}",
                         "check that the folder of paths.state exists and is writable") from e
    finally:
        for leftover in (temp, temp.with_name(temp.name + "-wal"), temp.with_name(temp.name + "-shm")):
            leftover.unlink(missing_ok=True)


@contextmanager
def state_connection(path: Path, *, write: bool) -> Iterator[tuple[sa.Connection, Path | None]]:
    """A connection to the state database at `path`, created only where no file exists and upgraded to
    HEAD when older (a write run only), and the file it is on (None: memory, for a read-only run on a
    missing file). A database error raised while it is open, by the caller too, becomes a StateError
    naming the file."""
    exists = path.exists()
    version = _inspect(path) if exists else None
    if write and version is None:
        _create(path)
    elif write and version is not None and not version.current:
        _migrate(path)
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
    """What a read-only run on an older state file lacks, made temporary (see `_temp_tables`); a state in
    memory (`where` None) gets the whole schema. A write run's file is at HEAD already."""
    if where is None:
        metadata.create_all(conn)
        conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
    elif not write:
        _temp_tables(conn)
