"""The schema of a state database, made and upgraded by the Alembic migrations in `publisher/migrations`
(one history for SQLite and PostgreSQL), run here on a connection the caller holds, inside its
transaction: never a step the operator runs by hand.

Reading where a state stands (`read_version`) and refusing what is not ours or is newer than this
publisher (`check`) are plain queries; Alembic itself is imported only when a state is made or upgraded.
A state made before the migrations (a `meta` schema_version, no `alembic_version` table) is taken up
where it stands. `ensure_schema` does all of it for a database server, under a transaction-scoped
advisory lock, so two first runs at once make one schema.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

from publisher.errors import StateError
from publisher.state.location import StateLocation
from publisher.state.versions import HEAD as HEAD
from publisher.state.versions import REVISIONS as REVISIONS
from publisher.state.versions import SCHEMA_VERSION

log = logging.getLogger(__name__)
PRE_ALEMBIC = {2: "0002"}  # schema_version of a state made before the migrations -> its revision (else: none yet)
SCHEDULER_TABLES = frozenset({"apscheduler_jobs"})  # `publisher schedule`'s job store; holds no publisher state
SCRIPTS = "publisher:migrations"
MIGRATION_LOCK = (0x7075626C, 0x6D696772)  # ("publ", "migr"): see publisher.state.dblock.NAMESPACE
UPGRADE = "upgrade publisher"
SERVER_RESTORE = ("restore it from a backup, or give paths.state an empty database to start a new state (readers "
                  "will then see every article as new)")


@dataclass(frozen=True)
class Version:
    """Where a state database stands: its tables, its Alembic revision and its meta schema_version."""

    tables: frozenset[str]
    revision: str | None
    schema_version: int | None

    @property
    def blank(self) -> bool:
        """No table at all, or only the scheduler's job store: a new state is made in it."""
        return not self.tables - SCHEDULER_TABLES

    @property
    def current(self) -> bool:
        return self.revision == HEAD


def read_version(conn: sa.Connection) -> Version:
    """Read where the state on `conn` stands (a few queries, no change)."""
    tables = frozenset(sa.inspect(conn).get_table_names())
    revision = schema_version = None
    if "alembic_version" in tables:
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    if "meta" in tables:
        value = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
        schema_version = int(value) if value is not None and str(value).isdigit() else None
    return Version(tables, revision, schema_version)


def check(version: Version, name: str, restore: str) -> None:
    """StateError when the state is not a publisher state, or newer than this publisher; `name` names it."""
    if version.blank:
        return
    if version.revision is not None and version.revision not in REVISIONS:
        raise StateError(f"{name}: state database is at migration {version.revision}, newer than this publisher "
                         f"(which knows up to {HEAD})", UPGRADE)
    if version.schema_version is None:
        raise StateError(f"{name}: not a publisher state database (no schema_version in a meta table)", restore)
    if version.schema_version > SCHEMA_VERSION:
        raise StateError(f"{name}: state database has schema version {version.schema_version}, newer than this "
                         f"publisher ({SCHEMA_VERSION})", UPGRADE)


def upgrade(conn: sa.Connection, version: Version) -> None:
    """Bring the state on `conn` (checked, at `version`) to HEAD, inside the transaction `conn` holds."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPTS)
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    if version.revision is None and not version.blank and version.schema_version in PRE_ALEMBIC:
        command.stamp(config, PRE_ALEMBIC[version.schema_version])
    log.info("state database: migrating from %s to %s", version.revision or "nothing", HEAD)
    command.upgrade(config, "head")


_CURRENT: set[str] = set()  # server databases this process found at HEAD


def ensure_schema(conn: sa.Connection, location: StateLocation, *, write: bool) -> None:
    """Make the schema in an empty server database (when `write`), upgrade an older one (when `write`), or
    check the one there; committed at once. A read-only run reads a current schema only. Once found current,
    a database is not looked at again by this process (a web request would pay four round trips)."""
    key = location.url.render_as_string(hide_password=False)
    if key in _CURRENT:
        return
    version = read_version(conn)
    conn.rollback()
    check(version, str(location), SERVER_RESTORE)
    if version.current:
        _CURRENT.add(key)
        return
    if not write:
        _readable(version, location)
        return
    with conn.begin():
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(*MIGRATION_LOCK)))
        version = read_version(conn)  # as another process may have left it meanwhile
        check(version, str(location), SERVER_RESTORE)
        if not version.current:
            upgrade(conn, version)
    _CURRENT.add(key)


def _readable(version: Version, location: StateLocation) -> None:
    """A read-only run on a server database that is not at HEAD: fine when its tables are (a state made
    before the migrations at this schema version), else a StateError saying what to run."""
    if version.blank:
        raise StateError(f"{location}: the state database has no publisher schema yet",
                         "run 'publisher publish' once to create it")
    if version.schema_version != SCHEMA_VERSION:
        raise StateError(f"{location}: the state database has schema version {version.schema_version}, older "
                         f"than this publisher's ({SCHEMA_VERSION})", "run 'publisher publish' once to upgrade it")
