"""A look into an SQLite state file with the standard library alone, read-only: what a no-op `publish`
needs (its `last_publish` memo), without importing SQLAlchemy, which takes longer to import than the
whole check takes. Anything unexpected gives None, and the caller does the full run, which opens the
state the usual way (and reports what is wrong with it)."""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

from publisher.state.location import StateLocation
from publisher.state.versions import HEAD, SCHEMA_VERSION


def peek_meta(location: StateLocation, key: str) -> str | None:
    """The meta row `key` of an SQLite state file at this publisher's schema (HEAD); None when the state
    is on a server, missing, older or newer, not a publisher state, or cannot be read right now."""
    if location.path is None or not location.path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(location.path))}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('schema_version', ?)", (key,)))
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    if revision != [(HEAD,)] or rows.get("schema_version") != str(SCHEMA_VERSION):
        return None
    value = rows.get(key)
    return value if isinstance(value, str) else None
