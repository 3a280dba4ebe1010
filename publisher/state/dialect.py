"""Where SQLite and PostgreSQL differ, in one place: the database clock, upserts, and row locks.

Leases, rate buckets and leadership use the database's clock (`now`), never a machine's own, so machines
whose clocks disagree still agree on when a lease ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite


def now(conn: sa.Connection) -> sa.ColumnElement[float]:
    """The database clock in epoch seconds, as an SQL expression (evaluated by the server, per statement)."""
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)
    return sa.cast((sa.func.julianday("now") - 2440587.5) * 86400.0, sa.Float)


def read_now(conn: sa.Connection) -> float:
    """The database clock now, in epoch seconds (one round trip)."""
    return float(conn.execute(sa.select(now(conn))).scalar_one())


def upsert(conn: sa.Connection, table: sa.Table, values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
           keys: Sequence[str]) -> None:
    """INSERT, or UPDATE the row whose `keys` match (INSERT ... ON CONFLICT DO UPDATE on both engines)."""
    rows = [values] if isinstance(values, Mapping) else list(values)
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # 20 ms to import: not for an SQLite state

        insert: sqlite.Insert | postgresql.Insert = postgresql.insert(table)
    else:
        insert = sqlite.insert(table)
    changed = {name: insert.excluded[name] for name in rows[0] if name not in keys}
    statement = insert.on_conflict_do_update(index_elements=list(keys), set_=changed) if changed \
        else insert.on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(statement, rows)


def skip_locked(query: sa.Select[Any], conn: sa.Connection) -> sa.Select[Any]:
    """SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite has one writer at a time and no row locks."""
    if conn.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


@contextmanager
def savepoint(conn: sa.Connection) -> Iterator[None]:
    """A savepoint inside the caller's transaction: an exception in the block undoes the block alone (and
    keeps a PostgreSQL transaction usable). pysqlite begins its transaction only before a write statement,
    and a SAVEPOINT outside one would commit on release: BEGIN first when none is open."""
    raw: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "sqlite" and raw is not None and not raw.in_transaction:
        conn.exec_driver_sql("BEGIN")
    with conn.begin_nested():
        yield


def fetch_all(conn: sa.Connection, query: sa.Select[Any]) -> Sequence[tuple[Any, ...]]:
    """Every row of `query` as plain tuples, fetched at once by the driver's own cursor on `conn`, in its
    transaction: a run reads whole tables (22,250 cached articles), and SQLAlchemy's Row objects, made one
    by one, cost more than the query. Plain binds only (no expanding IN); errors are SQLAlchemy's."""
    compiled = query.compile(dialect=conn.dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise ValueError("fetch_all takes plain binds only")
    params = compiled.construct_params()
    args: Any = tuple(params[name] for name in compiled.positiontup or ()) if compiled.positional else params
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        rows: Sequence[tuple[Any, ...]] = cursor.fetchall()
        return rows
    except dbapi.Error as e:
        raise sa.exc.DBAPIError.instance(str(compiled), args, e, dbapi.Error) from e
    finally:
        cursor.close()
