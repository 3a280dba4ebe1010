"""A look into an SQLite state file with the standard library alone, read-only: what a no-op `publish`
needs (its `last_publish` memo), without importing SQLAlchemy, which takes longer to import than the
whole check takes. Anything unexpected gives None, and the caller does the full run, which opens the
state the usual way (and reports what is wrong with it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote

from publisher.state.location import StateLocation
from publisher.state.versions import HEAD, SCHEMA_VERSION

T = TypeVar("T")


def peek(location: StateLocation, query: Callable[[sqlite3.Connection], T]) -> T | None:
    """query(connection) on an SQLite state file at this publisher's schema (HEAD), opened read-only;
    None when the state is on a server, missing, older or newer, not a publisher state, or cannot be
    read right now (the query's own sqlite3 errors included)."""
    if location.path is None or not location.path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(location.path))}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        if revision != [(HEAD,)] or version != [(str(SCHEMA_VERSION),)]:
            return None
        return query(conn)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def peek_meta(location: StateLocation, key: str) -> str | None:
    """The meta row `key` of an SQLite state file at this publisher's schema (see `peek`)."""

    def value(conn: sqlite3.Connection) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row and isinstance(row[0], str) else None

    return peek(location, value)
