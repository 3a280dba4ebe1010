"""Whether the delivery journal holds anything to send, found with the standard library's sqlite3 alone:
the delivery step after a `publish` that queued nothing then costs a millisecond instead of importing
SQLAlchemy and the sender (half a second) only to find the journal empty. Anything unexpected (a state
on a server, missing, at another schema, locked, not a publisher state) gives None: the caller then takes
the full path, which opens the state the usual way and reports what is wrong with it.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

from publisher.state.location import StateLocation
from publisher.state.peek import peek_meta

PENDING = ("queued", "failed")  # the statuses a run tries (again); journal.py's, kept here free of SQLAlchemy


def pending_messages(location: StateLocation) -> int | None:
    """Rows of the journal still to try (queued, or failed and to be tried again) in an SQLite state file at
    this publisher's schema; None when that cannot be told this cheaply."""
    if location.path is None or peek_meta(location, "schema_version") is None:  # also: at HEAD, readable
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(location.path))}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        marks = ", ".join("?" for _ in PENDING)
        row = conn.execute(f"SELECT count(*) FROM deliveries WHERE status IN ({marks})", PENDING).fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return int(row[0]) if row else None
