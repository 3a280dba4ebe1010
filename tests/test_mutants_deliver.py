"""deliver/ behaviour that the mutation run (issue 9) showed untested: the journal's list of rows not
delivered (`send --status` prints it) had been checked with one expired row only. A real SQLite state
file, rows made through the Subscribers and Journal APIs."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from publisher.config import load_settings
from publisher.deliver.journal import Journal, Problem
from publisher.deliver.send import Sender, open_transport
from publisher.deliver.subscribers import Subscribers
from publisher.store import open_store
from tests.conftest import Site
from tests.mailcheck import parse
from tests.test_delivery import FakeTime

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
