"""The no-op check of `publish` without SQLAlchemy: `publisher.state.peek` reads the last run's memo from
an SQLite state file (real files, made by the Store), and gives None for anything it should not judge;
and memo keys keep their exact text (stored keys are hashes of it)."""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from publisher.memo import memo_key
from publisher.models import Problem
from publisher.state.location import StateLocation, file_location, locate
from publisher.state.peek import peek_meta
from publisher.store import open_store


def test_peek_reads_the_row_the_store_wrote(tmp_path: Path) -> None:
    path = tmp_path / "publisher.db"
    with open_store(path) as store:
        store.meta_put("last_publish", '{"key": "k"}')
    assert peek_meta(file_location(path), "last_publish") == '{"key": "k"}'
    assert peek_meta(file_location(path), "absent") is None


def test_peek_gives_none_where_the_full_run_must_look(tmp_path: Path) -> None:
    assert peek_meta(file_location(tmp_path / "missing.db"), "last_publish") is None
    (tmp_path / "text.db").write_text("not a database", encoding="utf-8")
    assert peek_meta(file_location(tmp_path / "text.db"), "last_publish") is None
    server = locate("postgresql://pub@db.example/news", tmp_path, {}, "x")
    assert server.path is None and peek_meta(server, "last_publish") is None


def test_peek_gives_none_for_a_state_not_at_this_schema(tmp_path: Path) -> None:
    path = tmp_path / "publisher.db"
    with open_store(path) as store:
        store.meta_put("last_publish", "{}")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()
    assert peek_meta(StateLocation(path), "last_publish") is None


def test_a_file_location_names_its_sqlite_url_when_asked(tmp_path: Path) -> None:
    state = file_location(tmp_path / "publisher.db")
    assert state.url.drivername == "sqlite" and state.url.database == str(tmp_path / "publisher.db")


@dataclass(frozen=True)
class Empty:
    pass


Pair = namedtuple("Pair", "a b")


def test_memo_keys_keep_their_text() -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=2)))
    value = {"a": [1, when, (Problem("p", "m", "h", 3, "warning"),)], "b": Pair(None, 2.5), "c": Empty()}
    assert memo_key(value) == ("(('a', (1, '2026-01-02T01:04:00+00:00', (('Problem', 'p', 'm', 'h', 3, "
                               "'warning'),))), ('b', (None, 2.5)), ('c', ('Empty',)))")
    assert memo_key(when.astimezone(UTC)) == memo_key(when)
    assert memo_key([Path("x"), b"y", True]) == "(PosixPath('x'), b'y', True)"
