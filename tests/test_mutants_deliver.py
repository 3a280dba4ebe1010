"""deliver/ behaviour that the mutation run (issue 9) showed untested: the journal's list of rows not
delivered (`send --status` prints it) had been checked with one expired row only; a digest that cannot
be built, connection failures between successes, the reason of a connection failure, the report of a
stopped run, the List-Unsubscribe mailto, the order of unfinished digests, paging of pending rows and
the journal's commit. A real SQLite state file, rows made through the Subscribers and Journal APIs, the
real outbox transport (or smtplib against a closed port); mail read with tests/mailcheck.py."""

from __future__ import annotations

import io
import itertools
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from publisher.config import Settings, load_settings
from publisher.deliver.journal import BATCH, Journal, Problem
from publisher.deliver.send import DeliveryReport, DeliveryStopped, Sender, open_transport
from publisher.deliver.subscribers import Subscribers
from publisher.render.digest import UNSUBSCRIBE
from publisher.store import open_store
from tests.conftest import Site
from tests.mailcheck import parse, strict_parts
from tests.mailserver import free_port
from tests.test_delivery import FakeTime, use_smtp

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OUTCOMES = {  # digest -> address -> (status, error) after one try each
    "2026-11-01": {"r0@example.org": ("sent", None), "r1@example.org": ("failed", "452 4.2.2 Mailbox full"),
                   "r2@example.org": ("expired", "451 try later"), "r3@example.org": ("bounced", "550 no such user"),
                   "r4@example.org": ("cancelled", "subscriber is unsubscribed")},
    "2026-11-08": {"r0@example.org": ("failed", "timed out"), "r1@example.org": ("sent", None),
                   "r2@example.org": ("sent", None), "r3@example.org": ("cancelled", "subscriber is bounced"),
                   "r4@example.org": ("cancelled", "subscriber is unsubscribed")},
}


def test_problems_are_the_failed_and_expired_rows_by_digest_then_subscriber(tmp_path: Path) -> None:
    with open_store(tmp_path / "state.sqlite") as store:
        people, journal = Subscribers(store.conn), Journal(store)
        ids = {f"r{i}@example.org": people.add(f"r{i}@example.org", f"Reader {i}", NOW).id for i in range(5)}
        for digest_id, outcomes in OUTCOMES.items():
            store.record_digest(digest_id, NOW, [], "Subject", "<p>html</p>", "text")
            assert journal.enqueue(digest_id, NOW) == 5
            for item in list(journal.pending(digest_id)):
                status, error = outcomes[item.address]
                journal.mark(item, status, NOW, error=error)
        people.remove("r1@example.org", NOW, forget=True)  # a forgotten reader's failed row is still a problem
        expected = sorted([
            Problem("2026-11-01", ids["r1@example.org"], "", "failed", 1, "452 4.2.2 Mailbox full"),
            Problem("2026-11-01", ids["r2@example.org"], "r2@example.org", "expired", 1, "451 try later"),
            Problem("2026-11-08", ids["r0@example.org"], "r0@example.org", "failed", 1, "timed out"),
        ], key=lambda p: (p.digest_id, p.subscriber_id))
        assert journal.problems() == expected
        assert journal.problems(limit=2) == expected[:2]
        assert journal.pending_count() == 2  # the failed rows are tried again; the expired one is not
        pending = {d: [(p.digest_id, p.subscriber_id, p.address, p.status, p.attempts) for p in journal.pending(d)]
                   for d in OUTCOMES}
        assert pending == {  # each digest's own rows only; the forgotten reader's row is there, to be cancelled
            "2026-11-01": [("2026-11-01", ids["r1@example.org"], "", "forgotten", 1)],
            "2026-11-08": [("2026-11-08", ids["r0@example.org"], "r0@example.org", "active", 1)],
        }
        assert journal.unfinished() == ["2026-11-01", "2026-11-08"]


def test_every_sent_row_records_the_message_id_its_message_carries(site: Site) -> None:
    """The journal's message_id names the message that went out (a bounce report or a complaint quoting
    it is traced to its row by it): it must be that message's Message-ID header, for every reader."""
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    site.subscribe(3)
    assert site.publish("--no-send").returncode == 0
    fake = FakeTime()
    settings = load_settings(site.root / "publisher.toml", site.root)
    with open_store(settings.paths.state) as store:
        transport = open_transport(settings)
        try:
            report = Sender(settings, store, transport, lambda: NOW, sleep=fake.sleep,
                            monotonic=fake.monotonic).run()
        finally:
            transport.close()
    assert (report.sent, report.failed, report.digests) == (3, 0, ["2026-11-25"])
    with sqlite3.connect(site.state) as conn:
        recorded = dict(conn.execute("SELECT subscriber_id, message_id FROM deliveries WHERE status = 'sent'"))
    carried = {path.stem: parse(path.read_bytes())["Message-ID"]
               for path in (site.root / "outbox" / "2026-11-25").glob("*.eml")}
    assert len(carried) == 3 and recorded == carried


# --- a state file with digests and readers, and one run of the Sender on it ----------------------------------------

def _settings(site: Site) -> Settings:
    return load_settings(site.root / "publisher.toml", site.root)


def _seed(settings: Settings, created: dict[str, datetime], readers: int) -> list[str]:
    """`readers` active subscribers and the digests `created` (id -> time), each queued for all of them,
    committed; the subscriber ids in the order the journal sends them."""
    with open_store(settings.paths.state) as store:
        people, journal = Subscribers(store.conn), Journal(store)
        ids = sorted(people.add(f"r{i}@example.org", f"Reader {i}", NOW).id for i in range(readers))
        for digest_id, when in created.items():
            store.record_digest(digest_id, when, [], f"News {digest_id}", f"<p>{digest_id} <a href=\"{UNSUBSCRIBE}\">"
                                "leave</a></p>", f"{digest_id}\nLeave: {UNSUBSCRIBE}\n")
            assert journal.enqueue(digest_id, when) == readers
        store.checkpoint()
    return ids


def _run(settings: Settings, stop: Callable[[], bool] = lambda: False) -> DeliveryReport:
    """What `publisher send` does, in this process: the real state file and the configured transport."""
    fake = FakeTime()
    with open_store(settings.paths.state) as store:
        transport = open_transport(settings)
        try:
            return Sender(settings, store, transport, lambda: NOW, stop=stop, sleep=fake.sleep,
                          monotonic=fake.monotonic).run()
        finally:
            transport.close()


def _rows(settings: Settings) -> dict[tuple[str, str], tuple[str, int, str | None]]:
    """(digest, subscriber) -> (status, attempts, error), read through a connection of its own."""
    with sqlite3.connect(settings.paths.state.path or "") as conn:
        return {(d, s): (st, n, e) for d, s, st, n, e in conn.execute(
            "SELECT digest_id, subscriber_id, status, attempts, error FROM deliveries")}


def _outbox(settings: Settings, digest_id: str) -> list[str]:
    return sorted(p.stem for p in (settings.email.outbox / digest_id).glob("*.eml"))


# --- Sender ---------------------------------------------------------------------------------------------------------

def test_a_digest_that_cannot_be_built_leaves_its_rows_and_the_later_digests_still_go(site: Site) -> None:
    """The digests are sent oldest first; one whose stored message is damaged (its html is a BLOB, not
    text) is counted as failed with its reason, its rows stay queued, and the digests after it go."""
    settings = _settings(site)
    days = {f"2026-11-2{n}": NOW - timedelta(days=5 - n) for n in (1, 2, 3)}
    ids = _seed(settings, days, 2)
    with sqlite3.connect(settings.paths.state.path or "") as conn:
        conn.execute("UPDATE digests SET html = ? WHERE id = ?", (b"<p>damaged</p>", "2026-11-22"))
    report = _run(settings)
    assert report.digests == ["2026-11-21", "2026-11-22", "2026-11-23"]
    assert (report.sent, report.failed, report.bounced, report.stopped) == (4, 2, 0, False)
    ((status, reason), n), = report.reasons.items()
    assert (status, n) == ("failed", 2)
    assert reason.startswith("digest 2026-11-22: message not built: TypeError: "), reason
    assert _outbox(settings, "2026-11-21") == _outbox(settings, "2026-11-23") == ids
    assert _outbox(settings, "2026-11-22") == []
    rows = _rows(settings)
    assert {s: rows["2026-11-22", s] for s in ids} == dict.fromkeys(ids, ("queued", 0, None))
    assert {rows[d, s][0] for d in ("2026-11-21", "2026-11-23") for s in ids} == {"sent"}


def test_connection_failures_between_successes_do_not_add_up(site: Site) -> None:
    """max_connection_failures = 2 counts failures in a row: two failures, each followed by a message
    that went, do not stop the run. The outbox cannot write where a folder stands in a file's place
    (a ConnectionFailure: the outbox is the 'server')."""
    site.configure("[email]\nmax_connection_failures = 2")
    settings = _settings(site)
    ids = _seed(settings, {"2026-11-25": NOW}, 5)
    for blocked in (ids[1], ids[3]):
        (settings.email.outbox / "2026-11-25" / f"{blocked}.eml").mkdir(parents=True)
    report = _run(settings)
    assert (report.sent, report.failed, report.stopped) == (3, 2, False)
    reason = f"{settings.email.outbox}: cannot write the outbox: Is a directory"
    assert report.reasons == Counter({("failed", reason): 2})
    rows = _rows(settings)
    assert [rows["2026-11-25", s][:2] for s in ids] == [("sent", 1), ("failed", 0), ("sent", 1), ("failed", 0),
                                                        ("sent", 1)]  # a connection failure is not a try
    # two in a row do stop it, with the journal intact
    (settings.email.outbox / "2026-11-25" / f"{ids[1]}.eml").rmdir()
    (settings.email.outbox / "2026-11-25" / f"{ids[2]}.eml").unlink()
    (settings.email.outbox / "2026-11-25" / f"{ids[2]}.eml").mkdir()
    (settings.email.outbox / "2026-11-25" / f"{ids[4]}.eml").unlink()
    (settings.email.outbox / "2026-11-25" / f"{ids[4]}.eml").mkdir()
    with open_store(settings.paths.state) as store:
        store.conn.exec_driver_sql("UPDATE deliveries SET status = 'queued' WHERE subscriber_id IN (?, ?)",
                                   (ids[2], ids[4]))
        store.checkpoint()
    with pytest.raises(DeliveryStopped, match="2 connection failures in a row"):
        _run(settings)
    assert _rows(settings)["2026-11-25", ids[1]][0] == "sent"  # the one before the two failures went


def test_a_refused_connection_is_named_in_the_report(site: Site) -> None:
    """Fewer connection failures than max_connection_failures: the run ends with every row failed, and
    the report says why (the connection was refused), not just how many."""
    port = free_port()
    use_smtp(site, port)
    settings = _settings(site)
    ids = _seed(settings, {"2026-11-25": NOW}, 2)
    report = _run(settings)
    assert (report.sent, report.failed, report.stopped) == (0, 2, False)
    ((status, reason), n), = report.reasons.items()
    assert (status, n) == ("failed", 2)
    assert f"127.0.0.1:{port}" in reason and "cannot connect" in reason and "Connection refused" in reason, reason
    assert "NoneType" not in reason
    assert report.problem_lines() == [("error", f"2 messages not sent: {reason}; 'publisher send' tries again")]
    rows = _rows(settings)
    assert [rows["2026-11-25", s] for s in ids] == [("failed", 0, reason)] * 2


def test_a_stop_finishes_the_message_in_flight_and_the_report_says_stopped(site: Site) -> None:
    settings = _settings(site)
    ids = _seed(settings, {"2026-11-24": NOW - timedelta(days=1), "2026-11-25": NOW}, 3)
    asked = itertools.count()
    report = _run(settings, stop=lambda: next(asked) >= 2)  # asked before each message: two go
    assert report.stopped is True
    assert (report.sent, report.failed, report.digests) == (2, 0, ["2026-11-24"])
    assert _outbox(settings, "2026-11-24") == ids[:2]
    rows = _rows(settings)
    assert rows["2026-11-24", ids[2]][0] == "queued" and {rows["2026-11-25", s][0] for s in ids} == {"queued"}
    assert not _run(settings).stopped  # the next run goes to the end
    assert _outbox(settings, "2026-11-25") == ids


def test_list_unsubscribe_mailto_is_unsubscribe_at_the_site_host(site: Site) -> None:
    config = site.root / "publisher.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("https://example.com/", "https://news.example.net/"),
                      encoding="utf-8")
    settings = _settings(site)
    ids = _seed(settings, {"2026-11-25": NOW}, 2)
    assert _run(settings).sent == 2
    for sid in ids:
        data = (settings.email.outbox / "2026-11-25" / f"{sid}.eml").read_bytes()
        parts = strict_parts(data)
        https, mailto = (p.strip().removeprefix("<").removesuffix(">")
                         for p in str(parse(data)["List-Unsubscribe"]).split(","))
        assert mailto == f"mailto:unsubscribe@news.example.net?subject=unsubscribe%20{sid}"
        assert urlsplit(https).hostname == "news.example.net" and https in parts["plain"]


# --- Journal --------------------------------------------------------------------------------------------------------

def test_unfinished_digests_come_oldest_first_by_creation_not_by_id(tmp_path: Path) -> None:
    """The 10th digest of a day sorts before the 9th as a string; the journal goes by when each was made.
    A digest with nothing pending is not listed."""
    created = {"2026-11-25-10": NOW.replace(hour=10), "2026-11-24": NOW - timedelta(days=1),
               "2026-11-25-9": NOW.replace(hour=9), "2026-11-25-11": NOW.replace(hour=11)}
    with open_store(tmp_path / "state.sqlite") as store:
        journal = Journal(store)
        Subscribers(store.conn).add("r@example.org", "R", NOW)
        for digest_id, when in created.items():
            store.record_digest(digest_id, when, [], "Subject", "<p>html</p>", "text")
            journal.enqueue(digest_id, when)
        (done,) = journal.pending("2026-11-25-11")
        journal.mark(done, "sent", NOW)
        assert sorted(created) == ["2026-11-24", "2026-11-25-10", "2026-11-25-11", "2026-11-25-9"]
        assert journal.unfinished() == ["2026-11-24", "2026-11-25-9", "2026-11-25-10"]


def test_pending_pages_past_a_batch_and_yields_each_row_once(tmp_path: Path) -> None:
    readers = 2 * BATCH + 201
    with open_store(tmp_path / "state.sqlite") as store:
        people, journal = Subscribers(store.conn), Journal(store)
        csv = "email,name\n" + "".join(f"reader{n:05}@example.org,Reader {n}\n" for n in range(readers))
        assert people.import_stream(io.StringIO(csv, newline=""), NOW).added == readers
        store.record_digest("2026-11-25", NOW, [], "Subject", "<p>html</p>", "text")
        assert journal.enqueue("2026-11-25", NOW) == readers
        every = sorted(s.id for s in people.list())
        for item in itertools.islice(journal.pending("2026-11-25"), 0, None, 7):  # some rows are done already
            journal.mark(item, "sent", NOW)
        sent = set(every[::7])
        expected = [s for s in every if s not in sent]
        assert len(expected) > 2 * BATCH
        got = list(itertools.islice(journal.pending("2026-11-25"), readers + 1))  # bounded, should it repeat
        assert [p.subscriber_id for p in got] == expected
        assert {(p.digest_id, p.status, p.attempts) for p in got} == {("2026-11-25", "active", 0)}


def test_mark_counts_a_try_and_commits_it_at_once(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    with open_store(state) as store:
        journal = Journal(store)
        Subscribers(store.conn).add("r@example.org", "R", NOW)
        store.record_digest("2026-11-25", NOW, [], "Subject", "<p>html</p>", "text")
        journal.enqueue("2026-11-25", NOW)
        store.checkpoint()

        def seen() -> tuple[Any, ...]:  # through another connection, while the store is still open
            with sqlite3.connect(state) as other:
                row = other.execute("SELECT status, attempts, message_id, error, changed FROM deliveries").fetchone()
                return tuple(row)

        (item,) = journal.pending("2026-11-25")
        journal.mark(item, "failed", NOW, message_id="<m@x>", error="451 try later")
        assert seen() == ("failed", 1, "<m@x>", "451 try later", NOW.isoformat())
        (item,) = journal.pending("2026-11-25")
        later = NOW + timedelta(minutes=5)
        journal.mark(item, "failed", later, error="no connection", tried=False)  # not a try
        assert seen() == ("failed", 1, None, "no connection", later.isoformat())
        (item,) = journal.pending("2026-11-25")
        journal.mark(item, "sent", later, message_id="<m@x>")
        assert seen() == ("sent", 2, "<m@x>", None, later.isoformat())
