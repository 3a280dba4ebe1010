"""The schema of a state database on a server: created when the database has no table, checked otherwise.
(Stopgap until the Alembic migrations: metadata.create_all and the meta schema_version.)"""

from __future__ import annotations

import sqlalchemy as sa

from publisher.errors import StateError
from publisher.state.location import StateLocation
from publisher.state.schema import SCHEMA_VERSION, meta, metadata

RESTORE = ("restore it from a backup, or give paths.state an empty database to start a new state (readers will "
           "then see every article as new)")


def ensure_schema(conn: sa.Connection, location: StateLocation, *, write: bool) -> None:
    """Create the schema in an empty database (when `write`), or check the one there; committed at once."""
    tables = set(sa.inspect(conn).get_table_names())
    conn.rollback()
    if not tables - {"apscheduler_jobs"}:
        if not write:
            raise StateError(f"{location}: the state database has no publisher schema yet",
                             "run 'publisher publish' once to create it")
        with conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
            if "meta" not in set(sa.inspect(conn).get_table_names()):
                metadata.create_all(conn)
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        return
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first() \
        if "meta" in tables else None
    conn.rollback()
    if row is None or not str(row[0]).isdigit():
        raise StateError(f"{location}: not a publisher state database (no schema_version in a meta table)", RESTORE)
    if int(row[0]) > SCHEMA_VERSION:
        raise StateError(f"{location}: state database has schema version {row[0]}, newer than this publisher "
                         f"({SCHEMA_VERSION})", "upgrade publisher")
