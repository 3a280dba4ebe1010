"""The delivery step after `publish` looks into the journal with sqlite3 alone (`publisher.deliver.queued`):
nothing to send means no sender, no SQLAlchemy and no sender row; anything to send, or a state it should
not judge, means the full sender."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from publisher.deliver.queued import pending_messages
from publisher.state.location import file_location, locate
from publisher.store import open_store
from tests.conftest import Site


def _senders(state: Path) -> int:
    with sqlite3.connect(state) as conn:
        count = int(conn.execute("SELECT count(*) FROM workers").fetchone()[0])
    conn.close()
    return count


def test_pending_messages_counts_what_the_next_run_would_try(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    site.subscribe(2)
    assert site.publish("--no-send").returncode == 0
    assert pending_messages(file_location(site.state)) == 2, "queued for both readers"
    sent = site.publish()
    assert sent.returncode == 0 and "delivery (outbox" in sent.stdout and ": 2 sent, 0 failed" in sent.stdout
    assert pending_messages(file_location(site.state)) == 0
    assert _senders(site.state) == 1


def test_a_publish_with_nothing_to_send_prints_the_line_and_registers_no_sender(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    first = site.publish()
    assert first.returncode == 0, first.stderr
    assert "0 sent, 0 failed, 0 bounced, 0 cancelled;" in first.stdout
    again = site.publish()
    assert again.returncode == 0 and "0 sent, 0 failed, 0 bounced, 0 cancelled;" in again.stdout
    assert _senders(site.state) == 0, "a run with nothing to send is no sender"


def test_pending_messages_gives_none_where_the_full_sender_must_look(tmp_path: Path) -> None:
    assert pending_messages(file_location(tmp_path / "missing.db")) is None
    (tmp_path / "text.db").write_text("not a database", encoding="utf-8")
    assert pending_messages(file_location(tmp_path / "text.db")) is None
    assert pending_messages(locate("postgresql://pub@db.example/news", tmp_path, {}, "x")) is None
    path = tmp_path / "publisher.db"
    with open_store(path):
        pass
    assert pending_messages(file_location(path)) == 0
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()
    assert pending_messages(file_location(path)) is None, "another schema: the full path reports it"
