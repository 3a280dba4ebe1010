"""The Alembic migrations: one history that makes the declared schema on SQLite and on PostgreSQL, upgrades
a state file from before the migrations in place (rows intact), and refuses what is newer or not ours,
leaving it untouched. Real SQLite files, a real PostgreSQL server, the real CLI in subprocesses."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from publisher.errors import StateError
from publisher.state import migrate
from publisher.state.location import StateLocation, file_location, locate
from publisher.state.schema import SCHEMA_VERSION, metadata
from publisher.store import open_store
from tests.conftest import CLOCK, Site, run_cli
from tests.pgserver import PgServer

# The schema version 1 tables exactly as publisher 7ca981b made them (its metadata.create_all on SQLite):
# written out here so the test does not depend on revision 0001 to build what 0001 must take up.
V1_DDL = [
    'CREATE TABLE meta ("key" VARCHAR NOT NULL, value VARCHAR, PRIMARY KEY ("key"))',
    "CREATE TABLE articles (slug VARCHAR NOT NULL, id VARCHAR NOT NULL, source VARCHAR NOT NULL, content_hash "
    "VARCHAR NOT NULL, published VARCHAR NOT NULL, updated VARCHAR, first_seen VARCHAR NOT NULL, "
    "PRIMARY KEY (slug), UNIQUE (id))",
    "CREATE TABLE sources (path VARCHAR NOT NULL, mtime_ns BIGINT NOT NULL, size BIGINT NOT NULL, fingerprint "
    "VARCHAR NOT NULL, entry TEXT NOT NULL, html TEXT NOT NULL, PRIMARY KEY (path))",
    "CREATE TABLE related_lists (slug VARCHAR NOT NULL, input_key VARCHAR NOT NULL, ranked TEXT NOT NULL, "
    "PRIMARY KEY (slug))",
    "CREATE TABLE related_index (name VARCHAR NOT NULL, hashes TEXT NOT NULL, data BLOB NOT NULL, "
    "PRIMARY KEY (name))",
    "CREATE TABLE memo (name VARCHAR NOT NULL, input_key VARCHAR NOT NULL, output_sha VARCHAR NOT NULL, "
    "PRIMARY KEY (name))",
    "CREATE TABLE digests (id VARCHAR NOT NULL, created VARCHAR NOT NULL, subject VARCHAR NOT NULL, html TEXT "
    "NOT NULL, text TEXT NOT NULL, PRIMARY KEY (id))",
    "CREATE TABLE subscribers (id VARCHAR NOT NULL, email VARCHAR NOT NULL, address VARCHAR NOT NULL, name "
    "VARCHAR NOT NULL, status VARCHAR NOT NULL, bounces INTEGER NOT NULL, created VARCHAR NOT NULL, changed "
    "VARCHAR NOT NULL, PRIMARY KEY (id), UNIQUE (email))",
    "CREATE TABLE digest_articles (digest_id VARCHAR NOT NULL, slug VARCHAR NOT NULL, position INTEGER NOT NULL, "
    "PRIMARY KEY (digest_id, slug), FOREIGN KEY(digest_id) REFERENCES digests (id))",
    "CREATE TABLE deliveries (digest_id VARCHAR NOT NULL, subscriber_id VARCHAR NOT NULL, status VARCHAR NOT "
    "NULL, attempts INTEGER NOT NULL, message_id VARCHAR, changed VARCHAR NOT NULL, error VARCHAR, "
    "PRIMARY KEY (digest_id, subscriber_id), FOREIGN KEY(digest_id) REFERENCES digests (id))",
]
ARTICLE = ("one", "urn:uuid:11111111-2222-5333-8444-555555555555", "one.md", "hash-one",
           "2026-10-01T00:00:00+00:00", None, "2026-10-01T09:00:00+00:00")
V1_ROWS: dict[str, list[tuple[Any, ...]]] = {
    "meta": [("schema_version", "1"), ("secret", "s3cret-of-the-old-state")],
    "articles": [ARTICLE],
    "memo": [("rss.xml", "input-key", "output-sha")],
    "digests": [("2026-10-02", "2026-10-02T12:00:00+00:00", "Subject", "<p>html</p>", "text")],
    "digest_articles": [("2026-10-02", "one", 0)],
    "subscribers": [("sub-a", "a@example.org", "a@example.org", "A", "active", 0, "2026-09-01T00:00:00+00:00",
                     "2026-09-01T00:00:00+00:00"),
                    ("sub-b", "b@example.org", "b@example.org", "B", "active", 0, "2026-09-01T00:00:00+00:00",
                     "2026-09-01T00:00:00+00:00")],
    "deliveries": [("2026-10-02", "sub-a", "sent", 1, "<m1@example.com>", "2026-10-02T12:00:01+00:00", None),
                   ("2026-10-02", "sub-b", "queued", 0, None, "2026-10-02T12:00:00+00:00", None)],
}
V2_TABLES = {"workers", "rate_buckets", "leases", "runs"}
LEASE_COLUMNS = {"worker", "lease_until", "next_attempt_at"}


def make_v1_state(path: Path, *, skip: tuple[str, ...] = ()) -> None:
    """A state file as publisher kept it before the migrations (WAL, schema version 1), with rows in it;
    the tables in `skip` left out, as an older publisher could leave them."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    with conn:
        for ddl in V1_DDL:
            name = ddl.split()[2]
            if name not in skip:
                conn.execute(ddl)
        for table, rows in V1_ROWS.items():
            if table not in skip:
                conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.close()


def rows_of(path: Path, table: str, columns: str = "*") -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute(f"SELECT {columns} FROM {table}").fetchall(), key=repr)
    finally:
        conn.close()


def alembic_config(conn: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", migrate.SCRIPTS)
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    return config


def shape(engine: sa.Engine) -> dict[str, Any]:
    """Tables -> (columns with nullability, primary key, unique columns, foreign keys, indexes)."""
    inspector = sa.inspect(engine)
    found: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        found[table] = (
            sorted((c["name"], c["nullable"]) for c in inspector.get_columns(table)),
            sorted(inspector.get_pk_constraint(table)["constrained_columns"]),
            sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            sorted((tuple(f["constrained_columns"]), f["referred_table"]) for f in inspector.get_foreign_keys(table)),
            sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)
                   if not i.get("duplicates_constraint")),  # PostgreSQL lists a UNIQUE's index too
        )
    return found


def upgraded(url: str) -> sa.Engine:
    """An engine on `url` after `upgrade head` from nothing, in one transaction, as publisher runs it."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        migrate.upgrade(conn, migrate.read_version(conn))
    return engine


def test_the_revisions_publisher_knows_are_the_scripts_in_order() -> None:
    scripts = ScriptDirectory.from_config(alembic_config(sa.create_engine("sqlite://").connect()))
    assert scripts.get_heads() == [migrate.HEAD]
    walked = [script.revision for script in scripts.walk_revisions("base", "heads")]
    assert tuple(reversed(walked)) == migrate.REVISIONS


def test_the_migrations_make_the_declared_schema_on_both_engines(tmp_path: Path, pg_url: str) -> None:
    engines = {"sqlite": upgraded(f"sqlite:///{tmp_path / 'state.db'}"), "postgresql": upgraded(pg_url)}
    try:
        for name, engine in engines.items():
            with engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), metadata)
                assert diff == [], (name, diff)
                assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [(migrate.HEAD,)]
                assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).all() == [
                    (str(SCHEMA_VERSION),)]
        sqlite_shape, pg_shape = shape(engines["sqlite"]), shape(engines["postgresql"])
        assert set(sqlite_shape) == {t.name for t in metadata.sorted_tables} | {"alembic_version"}
        assert sqlite_shape == pg_shape
    finally:
        for engine in engines.values():
            engine.dispose()


def test_down_to_nothing_and_up_again_on_both_engines(tmp_path: Path, pg_url: str) -> None:
    for url in (f"sqlite:///{tmp_path / 'state.db'}", pg_url):
        engine = upgraded(url)
        with engine.begin() as conn:
            alembic_command.downgrade(alembic_config(conn), "0001")
        assert LEASE_COLUMNS.isdisjoint(c["name"] for c in sa.inspect(engine).get_columns("deliveries"))
        assert V2_TABLES.isdisjoint(sa.inspect(engine).get_table_names())
        with engine.begin() as conn:
            alembic_command.downgrade(alembic_config(conn), "base")
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
        with engine.begin() as conn:
            alembic_command.upgrade(alembic_config(conn), "head")
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == migrate.HEAD
        engine.dispose()


def assert_upgraded_with_rows_intact(path: Path) -> None:
    assert rows_of(path, "alembic_version") == [(migrate.HEAD,)]
    assert rows_of(path, "meta", "key, value") == sorted([("schema_version", str(SCHEMA_VERSION)),
                                                          *V1_ROWS["meta"][1:]], key=repr)
    for table in ("articles", "memo", "digests", "digest_articles", "subscribers"):
        assert rows_of(path, table) == sorted(V1_ROWS[table], key=repr), table
    old = "digest_id, subscriber_id, status, attempts, message_id, changed, error"
    assert rows_of(path, "deliveries", old) == V1_ROWS["deliveries"]
    assert rows_of(path, "deliveries", "worker, lease_until, next_attempt_at") == [(None, None, None)] * 2
    engine = sa.create_engine(f"sqlite:///{path}")
    assert set(sa.inspect(engine).get_table_names()) >= V2_TABLES
    engine.dispose()


def test_a_v1_state_file_is_upgraded_in_place_by_open_store(tmp_path: Path) -> None:
    path = tmp_path / "publisher.db"
    make_v1_state(path)
    inode = path.stat().st_ino
    with open_store(file_location(path)) as store:
        assert store.meta_get("secret") == "s3cret-of-the-old-state"
        assert store.articles().ids() == {ARTICLE[1]: ("one", "one.md")}
    assert path.stat().st_ino == inode, "upgraded in place, not replaced"
    assert_upgraded_with_rows_intact(path)


def test_a_v1_state_file_is_upgraded_by_publish_and_keeps_its_ids(site: Site) -> None:
    make_v1_state(site.state)
    site.write("one.md", "---\ntitle: One\ndate: 2026-10-01\n---\nThe first article.\n")
    site.write("two.md", "---\ntitle: Two\ndate: 2026-10-03\n---\nThe second article.\n")
    result = site.publish("--no-send")
    assert result.returncode == 0, result.stderr
    assert "alembic" not in result.stderr.lower() and "Traceback" not in result.stderr, result.stderr
    assert rows_of(site.state, "alembic_version") == [(migrate.HEAD,)]
    ids = dict(rows_of(site.state, "articles", "slug, id"))
    assert ids["one"] == ARTICLE[1], "the article's id from before the upgrade was kept"
    assert ARTICLE[1] in (site.feeds / "atom.xml").read_text(encoding="utf-8")
    assert rows_of(site.state, "subscribers", "id") == [("sub-a",), ("sub-b",)]


def test_tables_an_older_state_lacks_are_made_by_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "publisher.db"
    make_v1_state(path, skip=("related_lists", "related_index", "memo"))
    with open_store(file_location(path)) as store:
        store.memo_put("rss.xml", "key", "sha")
        assert store.memo_get("rss.xml") == ("key", "sha")
        assert store.related_index() is None
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_several_runs_upgrading_one_v1_file_at_once_upgrade_it_once(site: Site) -> None:
    make_v1_state(site.state)
    adds = [subprocess.Popen([sys.executable, "-m", "publisher", "subscribers", "add", f"r{n}@example.org"],
                             cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for n in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in adds]
    assert all(code == 0 for code, _ in results), results
    assert_upgraded_with_rows_intact_but(site.state, extra_subscribers=4)


def assert_upgraded_with_rows_intact_but(path: Path, *, extra_subscribers: int) -> None:
    assert rows_of(path, "alembic_version") == [(migrate.HEAD,)]
    assert rows_of(path, "meta", "count(*)") == [(len(V1_ROWS["meta"]),)]
    assert rows_of(path, "subscribers", "count(*)") == [(2 + extra_subscribers,)]
    assert rows_of(path, "deliveries", "count(*)") == [(2,)]


READ_ONLY = {
    "check": ("check", "--clock", CLOCK),
    "dry-run": ("publish", "--dry-run", "--clock", CLOCK),
    "preview": ("preview", "--clock", CLOCK),
    "send-status": ("send", "--status"),
    "subscribers-list": ("subscribers", "list"),
}


@pytest.mark.parametrize("command", list(READ_ONLY.values()), ids=list(READ_ONLY))
def test_read_only_commands_read_a_v1_file_without_writing_it(site: Site, command: tuple[str, ...]) -> None:
    make_v1_state(site.state)
    site.write("one.md", "---\ntitle: One\ndate: 2026-10-01\n---\nThe first article.\n")
    before = site.state.read_bytes()
    result = run_cli(*command, cwd=site.root)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert site.state.read_bytes() == before, "a read-only command wrote the state file"


def set_revision(conn: sa.Connection, revision: str) -> None:
    conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


@pytest.mark.parametrize("newer", ["revision", "schema_version"])
def test_a_newer_state_file_is_refused_and_kept(site: Site, newer: str) -> None:
    site.write("one.md", "---\ntitle: One\n---\nText.\n")
    engine = upgraded(f"sqlite:///{site.state}")
    with engine.begin() as conn:
        if newer == "revision":
            set_revision(conn, "0099")
        else:
            conn.execute(sa.text("DROP TABLE alembic_version"))
            conn.execute(sa.text("UPDATE meta SET value = '3' WHERE key = 'schema_version'"))
    engine.dispose()
    before = site.state.read_bytes()
    for command in (("publish", "--clock", CLOCK), ("check", "--clock", CLOCK)):
        result = run_cli(*command, cwd=site.root)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and str(site.state) in lines[0] and "upgrade publisher" in lines[0], lines
        assert ("0099" if newer == "revision" else "schema version 3") in lines[0], lines
    assert site.state.read_bytes() == before


def pg_tables(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    try:
        return shape(engine)
    finally:
        engine.dispose()


def test_a_newer_revision_on_postgresql_is_refused_and_kept(pg_url: str) -> None:
    engine = upgraded(pg_url)
    with engine.begin() as conn:
        set_revision(conn, "0099")
    engine.dispose()
    before = pg_tables(pg_url)
    for write in (True, False):
        with pytest.raises(StateError) as refused, open_store(_location(pg_url), write=write):
            raise AssertionError("a newer state was opened")
        assert "0099" in str(refused.value) and refused.value.hint == "upgrade publisher"
    assert pg_tables(pg_url) == before


def _location(url: str) -> StateLocation:
    return locate(url, Path.cwd(), {}, "test")


def _with_password(url: str, pg_server: PgServer) -> str:
    """The URL as a role with a password (the test cluster trusts local users: the password is not checked)."""
    with pg_server.admin() as conn:
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'keeper') THEN "
                     "CREATE ROLE keeper LOGIN SUPERUSER PASSWORD 'hunter2-secret'; END IF; END $$")
    return url.replace("postgres@", "keeper:hunter2-secret@")


def test_a_foreign_postgresql_database_is_refused_untouched(site: Site, pg_url: str, pg_server: PgServer) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE invoices (id integer PRIMARY KEY, total numeric)"))
        conn.execute(sa.text("INSERT INTO invoices VALUES (1, 9.5)"))
    engine.dispose()
    before = pg_tables(pg_url)
    site.write("one.md", "---\ntitle: One\n---\nText.\n")
    env = {**os.environ, "PUBLISHER_DATABASE_URL": _with_password(pg_url, pg_server)}
    for command in (("publish", "--clock", CLOCK), ("subscribers", "add", "a@example.org")):
        result = subprocess.run([sys.executable, "-m", "publisher", *command], cwd=site.root, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "hunter2-secret" not in result.stderr + result.stdout, "the password reached the output"
        lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        database = pg_url.split("/")[-1].split("?")[0]
        assert len(lines) == 1 and database in lines[0] and "not a publisher state database" in lines[0], lines
    assert pg_tables(pg_url) == before


def test_two_first_runs_on_an_empty_postgresql_database_make_one_schema(site: Site, pg_url: str) -> None:
    site.configure(f'[paths]\nstate = "{pg_url}"')
    adds = [subprocess.Popen([sys.executable, "-m", "publisher", "subscribers", "add", f"r{n}@example.org"],
                             cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for n in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in adds]
    assert all(code == 0 for code, _ in results), results
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [(migrate.HEAD,)]
        assert conn.execute(sa.text("SELECT count(*) FROM meta WHERE key = 'schema_version'")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM subscribers")).scalar() == 4
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()


def test_a_read_only_store_reads_a_v1_file_as_if_upgraded(tmp_path: Path) -> None:
    """Temporary views add the columns it lacks (NULL), temporary tables the tables; the file is kept."""
    path = tmp_path / "publisher.db"
    make_v1_state(path)
    before = path.read_bytes()
    with open_store(file_location(path), write=False) as store:
        rows = store.conn.execute(sa.text("SELECT subscriber_id, status, worker, lease_until, next_attempt_at "
                                          "FROM deliveries ORDER BY subscriber_id")).all()
        assert [tuple(row) for row in rows] == [("sub-a", "sent", None, None, None), ("sub-b", "queued", None, None,
                                                                                     None)]
        assert store.conn.execute(sa.text("SELECT count(*) FROM workers")).scalar() == 0
        assert store.articles().ids() == {ARTICLE[1]: ("one", "one.md")}
    assert path.read_bytes() == before
    tables = [name for (name,) in rows_of(path, "sqlite_master WHERE type IN ('table', 'view')", "name")]
    assert tables == sorted(ddl.split()[2] for ddl in V1_DDL), "the file gained a table or view"


def test_a_postgresql_state_from_before_the_migrations_is_taken_up(pg_url: str) -> None:
    """The stopgap made schema 2 with metadata.create_all and no alembic_version: read as is, then stamped."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(sa.text("INSERT INTO meta VALUES ('schema_version', '2'), ('secret', 's')"))
    with open_store(_location(pg_url), write=False) as store:
        assert store.meta_get("secret") == "s"
    assert "alembic_version" not in sa.inspect(engine).get_table_names(), "a read-only run changed the database"
    with open_store(_location(pg_url)) as store:
        store.meta_put("secret", "t")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [(migrate.HEAD,)]
        assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'secret'")).scalar() == "t"
    engine.dispose()


def test_a_read_only_run_on_an_empty_postgresql_database_says_to_publish_first(pg_url: str) -> None:
    with pytest.raises(StateError) as refused, open_store(_location(pg_url), write=False):
        raise AssertionError("an empty database was read")
    assert "no publisher schema yet" in str(refused.value) and "publisher publish" in refused.value.hint
    engine = sa.create_engine(pg_url)
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()


def test_a_v1_file_that_already_has_some_schema_2_tables_is_upgraded(tmp_path: Path) -> None:
    """Publisher between schema 2's declaration and the migrations made the missing tables of a v1 file
    (workers, rate_buckets, leases, runs) without adding the lease columns or changing its version."""
    path = tmp_path / "publisher.db"
    make_v1_state(path)
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[metadata.tables[name] for name in sorted(V2_TABLES)])
        conn.execute(sa.text("INSERT INTO workers VALUES ('w', 'h', 1, 0, 0, 0, 0, 0, 'finished')"))
    with open_store(file_location(path)):
        pass
    assert_upgraded_with_rows_intact(path)
    assert rows_of(path, "workers", "id") == [("w",)]
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()
