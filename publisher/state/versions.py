"""Where this publisher's state schema stands, as plain constants (no SQLAlchemy): the meta schema_version
and the Alembic revisions. `publisher.state.peek` reads a state file with these and the standard library."""

from __future__ import annotations

SCHEMA_VERSION = 2  # 2: delivery leases, workers, shared rate buckets, scheduler leadership and runs
REVISIONS = ("0001", "0002")  # the revisions in publisher/migrations/versions, oldest first (a test checks)
HEAD = REVISIONS[-1]
