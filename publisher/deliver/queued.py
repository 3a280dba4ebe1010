"""Whether the delivery journal holds anything to send, found with the standard library's sqlite3 alone:
the delivery step after a `publish` that queued nothing then costs a millisecond instead of importing
SQLAlchemy and the sender (half a second) only to find the journal empty. Anything unexpected (a state
on a server, missing, at another schema, locked, not a publisher state) gives None: the caller then takes
the full path, which opens the state the usual way and reports what is wrong with it.
"""

from __future__ import annotations

import sqlite3

from publisher.state.location import StateLocation
from publisher.state.peek import peek

PENDING = ("queued", "failed")  # the statuses a run tries (again); journal.py's, kept here free of SQLAlchemy


def pending_messages(location: StateLocation) -> int | None:
    """Rows of the journal still to try (queued, or failed and to be tried again) in an SQLite state file at
    this publisher's schema; None when that cannot be told this cheaply."""

    def count(conn: sqlite3.Connection) -> int:
        marks = ", ".join("?" for _ in PENDING)
        return int(conn.execute(f"SELECT count(*) FROM deliveries WHERE status IN ({marks})", PENDING).fetchone()[0])

    return peek(location, count)
