"""The state database is never silently replaced, is created whole under concurrency, and read-only
commands never take its write lock. Real SQLite files, the real CLI in real subprocesses."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from publisher import lock
from publisher.errors import StateError
from publisher.state.migrate import HEAD
from publisher.state.schema import SCHEMA_VERSION
from tests.conftest import CLOCK, Site, run_cli

RESTORE = "restore it from a backup, or move it away to start a new state"


def write_articles(site: Site, count: int) -> None:
    for n in range(count):
        site.write(f"a{n:04}.md", f"---\ntitle: Article number {n}\ndate: 2026-10-{1 + n % 28:02}\n---\n"
                   f"Paragraph {n} about topic {n % 7}, with words enough to rank.\n")


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _not_sqlite(path: Path) -> None:
    path.write_text("id,title\n1,not a database\n", encoding="utf-8")


def _foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    conn.close()


def _meta_without_version(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('other', '1')")
    conn.close()


def _truncated(path: Path) -> None:
    """A state that was a real one: its first publish, then the file emptied (`: > publisher.db`)."""
    site = Site(path.parent)
    assert site.publish().returncode == 0
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)
    path.write_bytes(b"")


BAD_STATES: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty": (_empty, "is an empty file"),
    "truncated": (_truncated, "is an empty file"),
    "not-sqlite": (_not_sqlite, "is not an SQLite database"),
    "foreign-sqlite": (_foreign_sqlite, "not a publisher state database"),
    "meta-without-version": (_meta_without_version, "not a publisher state database"),
}
COMMANDS = {
    "publish": ("publish", "--clock", CLOCK),
    "check": ("check", "--clock", CLOCK),
    "dry-run": ("publish", "--dry-run", "--clock", CLOCK),
    "preview": ("preview", "--clock", CLOCK),
    "subscribers-add": ("subscribers", "add", "reader@example.org"),
}


CASES = [(bad, COMMANDS["publish"]) for bad in BAD_STATES]
CASES += [("empty", command) for name, command in COMMANDS.items() if name != "publish"]


@pytest.mark.parametrize(("bad", "command"), CASES, ids=[f"{b}-{c[0]}-{c[1]}" for b, c in CASES])
def test_a_state_file_that_is_not_ours_is_an_error_and_is_kept(site: Site, bad: str, command: tuple[str, ...]) -> None:
    site.write("one.md", "---\ntitle: One\n---\nThe only article.\n")
    make, says = BAD_STATES[bad]
    make(site.state)
    before = site.state.read_bytes()
    shutil.rmtree(site.feeds, ignore_errors=True)
    result = run_cli(*command, cwd=site.root)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = errors(result)
    assert len(lines) == 1 and str(site.state) in lines[0] and says in lines[0] and RESTORE in lines[0], lines
    assert site.state.read_bytes() == before, "the state file was changed"
    assert not (site.feeds / "rss.xml").exists(), "feeds written from a state that was not used"


def test_a_new_state_is_made_only_where_no_file_is(site: Site) -> None:
    site.write("one.md", "---\ntitle: One\n---\nThe only article.\n")
    assert run_cli("check", "--clock", CLOCK, cwd=site.root).returncode == 0
    assert not site.state.exists(), "check wrote a state"
    assert site.publish().returncode == 0
    with sqlite3.connect(site.state) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
        assert conn.execute("SELECT count(*) FROM articles").fetchone() == (1,)
    conn.close()
    leftovers = [p.name for p in site.root.iterdir() if p.name.startswith(".publisher.db")]
    assert leftovers == [], leftovers


def test_a_state_file_made_by_the_scheduler_job_store_alone_is_given_the_schema(site: Site) -> None:
    """`publisher schedule` may open the file (its job store table) before the first run: no data lost."""
    site.write("one.md", "---\ntitle: One\n---\nThe only article.\n")
    with sqlite3.connect(site.state) as conn:
        conn.execute("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT, "
                     "job_state BLOB NOT NULL)")
    conn.close()
    assert run_cli("check", "--clock", CLOCK, cwd=site.root).returncode == 0
    result = site.publish()
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(site.state) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert {"apscheduler_jobs", "meta", "articles"} <= tables


def test_a_job_store_file_made_while_the_state_was_being_built_is_given_the_schema(tmp_path: Path) -> None:
    """The race the scheduler can win: the job store makes the file between the check and the link."""
    from publisher.state import statefile

    state = tmp_path / "publisher.db"
    with sqlite3.connect(state) as conn:
        conn.execute("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT, "
                     "job_state BLOB NOT NULL)")
    conn.close()
    statefile._create(state)  # finds the file there when it links
    with sqlite3.connect(state) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    assert version is not None, "a state without its schema version is refused by every later run"


def test_many_processes_creating_the_state_at_once_make_one_schema(site: Site) -> None:
    adds = [subprocess.Popen([sys.executable, "-m", "publisher", "subscribers", "add", f"r{n}@example.org"],
                             cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for n in range(6)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in adds]
    assert all(code == 0 for code, _ in results), results
    with sqlite3.connect(site.state) as conn:
        assert conn.execute("SELECT count(*) FROM subscribers").fetchone() == (6,)
        assert conn.execute("SELECT count(*) FROM meta WHERE key = 'schema_version'").fetchone() == (1,)
    conn.close()
    leftovers = [p.name for p in site.root.iterdir() if p.name.startswith(".publisher.db")]
    assert leftovers == [], leftovers


def test_check_during_the_first_publish_is_fine(site: Site) -> None:
    """Checks run from the moment the state file appears until the first publish ends (its transaction
    is open all that time): each sees a whole schema, or no file at all."""
    write_articles(site, 800)
    first = subprocess.Popen([sys.executable, "-m", "publisher", "publish", "--clock", CLOCK, "--no-send"],
                             cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not site.state.exists() and first.poll() is None:
        time.sleep(0.01)
    checks: list[subprocess.CompletedProcess[str]] = []
    while first.poll() is None:
        checks.append(run_cli("check", "--clock", CLOCK, cwd=site.root))
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert checks, "the first publish ended before a check could start: give the test more articles"
    for result in checks:
        assert result.returncode == 0, result.stderr
        assert "800 articles checked" in result.stdout, result.stdout


READ_ONLY = {
    "check": ("check", "--clock", CLOCK),
    "dry-run": ("publish", "--dry-run", "--clock", "2026-11-26T12:00:00Z"),
    "preview": ("preview", "--clock", "2026-11-26T12:00:00Z"),
    "related": ("related", "--all", "--clock", "2026-11-26T12:00:00Z"),
    "send-status": ("send", "--status"),
    "subscribers-list": ("subscribers", "list"),
}


@pytest.mark.parametrize("command", list(READ_ONLY.values()), ids=list(READ_ONLY))
def test_read_only_commands_work_while_another_process_holds_the_write_lock(
        site: Site, command: tuple[str, ...]) -> None:
    """Were they to write (even to roll back), they would wait for the lock and time out."""
    write_articles(site, 30)
    assert site.publish().returncode == 0
    site.write("new.md", "---\ntitle: A New One\ndate: 2026-11-26\n---\nNew text, never published.\n")
    holder = sqlite3.connect(site.state, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held as `subscribers add` would
    try:
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "publisher", *command], cwd=site.root, capture_output=True,
                                text=True, timeout=25)
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 0, result.stderr
    assert took < 20, f"{command[0]} waited for the write lock ({took:.1f} s)"
    with sqlite3.connect(site.state) as conn:
        assert conn.execute("SELECT count(*) FROM articles WHERE slug = 'new'").fetchone() == (0,)
    conn.close()


def test_a_full_disk_at_lock_time_is_one_line_naming_the_lock_file(tmp_path: Path) -> None:
    """The lock file is /dev/full (writes fail with ENOSPC), the way a full disk fails the lock."""
    if not Path("/dev/full").exists():
        raise AssertionError("/dev/full is needed by this test (Linux)")
    state = tmp_path / "publisher.db"
    lock.lock_path(state).symlink_to("/dev/full")
    with pytest.raises(StateError) as failed, lock.acquire(state, 0, "publish"):
        raise AssertionError("the lock was taken on a full disk")
    message = str(failed.value)
    assert "\n" not in message and str(lock.lock_path(state)) in message, message
    assert "No space left on device" in message and "paths.state" in message, message
    assert isinstance(failed.value.__cause__, OSError), "raised from the OSError"


def test_a_full_disk_at_lock_time_is_one_line_from_the_cli(site: Site) -> None:
    site.write("one.md", "---\ntitle: One\n---\nText.\n")
    lock.lock_path(site.state).symlink_to("/dev/full")
    result = site.publish()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = errors(result)
    assert len(lines) == 1 and "publisher.db.lock" in lines[0] and "No space left" in lines[0], lines
