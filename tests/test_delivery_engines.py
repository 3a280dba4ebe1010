"""Delivery and the journal behave the same on both engines: every test runs once on an SQLite file and once on a
PostgreSQL database of its own (`state_site` / `state_url`, tests/conftest.py). Real parts: the CLI in
subprocesses (`python -m publisher publish/send`), aiosmtpd on 127.0.0.1 or the outbox, the state read back
with SQL; the Journal API on a real store.

Each reader gets each digest once across re-runs; a reader refused for now (4xx) is retried, then expired after
email.max_attempts; a bounce (5xx) and its count are one transaction; a reader who left before the send is
cancelled; a SIGKILLed `send` loses nothing and sends at most one message twice; SIGTERM finishes the message in
flight (exit 130) and the next `send` finishes the list; `send --status` says all of it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from publisher.deliver.journal import Journal, Problem
from publisher.deliver.subscribers import Subscribers
from publisher.state.location import locate
from publisher.store import open_store
from tests.conftest import StateSite, run_cli
from tests.mailserver import Collector, smtp_server
from tests.test_delivery import use_smtp
from tests.test_workers import DIGEST, _seed

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
CRASH = 86  # the exit status of a `send` made to die at a chosen step


def _status(site: StateSite) -> list[str]:
    result = run_cli("send", "--status", cwd=site.root)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result.stdout.splitlines()


def _counts(site: StateSite) -> dict[str, int]:
    """status -> rows, over the whole journal."""
    return {str(s): int(n) for s, n in site.query("SELECT status, count(*) FROM deliveries GROUP BY status")}


def _wait_for_copies(server: Collector, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while sum(server.copies().values()) < count and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    if sum(server.copies().values()) < count:
        process.kill()
        raise AssertionError(f"sending did not begin: {process.communicate()}")


def _seeded(site: StateSite, readers: int) -> list[str]:
    """`readers` subscribers and one digest queued for them, made through the library on the site's state."""
    return _seed(site.url, site.root, readers)


# --- through the CLI ---------------------------------------------------------------------------------------

def test_each_reader_gets_each_digest_once_across_re_runs(state_site: StateSite) -> None:
    site = state_site
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(3)
    with smtp_server() as (server, port):
        use_smtp(site, port)
        first = site.publish()
        assert first.returncode == 0 and "3 sent, 0 failed" in first.stdout, first.stdout + first.stderr
        again = site.publish()
        assert again.returncode == 0 and "delivery (SMTP): 0 sent" in again.stdout, again.stdout + again.stderr
        resend = run_cli("send", cwd=site.root)
        assert resend.returncode == 0 and "0 sent, 0 failed" in resend.stdout, resend.stdout + resend.stderr
        assert server.copies() == dict.fromkeys(readers, 1), "a re-run sends nothing twice"
        site.write("two.md", "---\ntitle: Second news\n---\nMore happened.\n")
        later = site.publish(clock="2026-11-26T12:00:00Z")
        assert later.returncode == 0 and "3 sent, 0 failed" in later.stdout, later.stdout + later.stderr
        assert server.copies() == dict.fromkeys(readers, 2), "the new digest once each"
        for reader in readers:
            assert len({m["Message-ID"] for m in server.parsed(reader)}) == 2
    lines = _status(site)
    digests = [line for line in lines if re.match(r"\d{4}-\d\d-\d\d\S*: ", line)]
    assert [line.split(": ", 1)[1] for line in digests] == ["0 queued, 3 sent, 0 failed, 0 expired, 0 bounced, "
                                                            "0 cancelled"] * 2, lines
    assert _counts(site) == {"sent": 6}
    workers = [re.fullmatch(r"worker \S+: finished, (\d+) claimed, (\d+) sent, 0 failed, last seen \d+ s ago", line)
               for line in lines if line.startswith("worker ")]
    assert workers and all(workers), lines  # each run is a sender of its own
    assert sum(int(m.group(2)) for m in workers if m) == 6, lines


def test_a_reader_refused_for_now_is_retried_then_expired_after_max_attempts(state_site: StateSite) -> None:
    site = state_site
    readers = _seeded(site, 3)
    full = Collector()
    full.replies = {readers[1]: "452 4.2.2 Mailbox full"}  # always
    with smtp_server(full) as (_, port):
        use_smtp(site, port, "max_retries = 2\nmax_attempts = 3")  # 2 tries in the first run, 1 in the second
        first = run_cli("-v", "send", cwd=site.root)
        reason = f"127.0.0.1:{port} answered 452 4.2.2 Mailbox full"
        assert first.returncode == 1 and "2 sent, 1 failed, 0 bounced" in first.stdout, first.stdout + first.stderr
        assert "trying again in 1.0 s" in first.stderr and "Traceback" not in first.stderr, first.stderr
        assert site.deliveries()[readers[1]] == ("failed", 2, reason)
        second = run_cli("send", cwd=site.root)
        assert second.returncode == 1 and "0 sent, 1 failed" in second.stdout, second.stdout + second.stderr
        assert f"error: 1 message not sent and given up after 3 tries: {reason}" in second.stderr.splitlines()
        third = run_cli("send", cwd=site.root)
        assert third.returncode == 0 and "0 sent, 0 failed" in third.stdout, third.stdout + third.stderr
        assert full.refused[readers[1]] == 3 and full.copies() == {readers[0]: 1, readers[2]: 1}
    assert site.deliveries()[readers[1]] == ("expired", 3, reason)
    (subscriber,) = site.query("SELECT id FROM subscribers WHERE address = :a", a=readers[1])
    lines = _status(site)
    assert f"{DIGEST}: 0 queued, 2 sent, 0 failed, 1 expired, 0 bounced, 0 cancelled" in lines, lines
    assert f"  {DIGEST} expired after 3 tries: {readers[1]} ({subscriber[0]}): {reason}" in lines, lines


DIE_AFTER_BOUNCE_COUNT = r"""
import os
import sys

from publisher import cli
from publisher.deliver.subscribers import Subscribers

real = Subscribers.mark_bounce


def mark_bounce(self, *args, **kwargs):
    real(self, *args, **kwargs)
    os._exit(86)  # the bounce is counted, its transaction not committed


Subscribers.mark_bounce = mark_bounce
sys.argv = ["publisher", "send", "--lease", "1"]
cli.main()
"""


def test_a_bounce_and_its_count_are_one_transaction(state_site: StateSite) -> None:
    site = state_site
    readers = _seeded(site, 4)
    refusing = Collector()
    refusing.replies = {readers[2]: "550 5.1.1 No such user"}  # always

    def bounce() -> tuple[int, str]:
        ((count, status),) = site.query("SELECT s.bounces, d.status FROM subscribers s JOIN deliveries d "
                                        "ON s.id = d.subscriber_id WHERE s.address = :a", a=readers[2])
        return int(count), str(status)

    with smtp_server(refusing) as (server, port):
        use_smtp(site, port)
        died = subprocess.run([sys.executable, "-c", DIE_AFTER_BOUNCE_COUNT], cwd=site.root, capture_output=True,
                              text=True, timeout=60)
        assert died.returncode == CRASH, died.stdout + died.stderr
        assert bounce() == (0, "queued"), "killed before the commit: the row and its count are lost together"
        again = run_cli("send", cwd=site.root)  # once the dead sender's lease (1 s) has run out
        assert again.returncode == 0 and "1 bounced" in again.stdout, again.stdout + again.stderr
        assert "warning: 1 message refused for good (bounced)" in again.stderr, again.stderr
        assert server.copies() == {r: 1 for r in readers if r != readers[2]}
        assert refusing.refused[readers[2]] == 2
    assert bounce() == (1, "bounced"), "counted once, with its row"


def test_a_reader_who_left_before_the_send_is_cancelled(state_site: StateSite) -> None:
    site = state_site
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(3)
    published = site.publish("--no-send")
    assert published.returncode == 0, published.stderr
    left = run_cli("subscribers", "remove", readers[1], cwd=site.root)
    assert left.returncode == 0, left.stderr
    sent = run_cli("send", cwd=site.root)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "delivery (outbox" in sent.stdout and "2 sent, 0 failed, 0 bounced, 1 cancelled" in sent.stdout
    files = list((site.root / "outbox").rglob("*.eml"))
    assert len(files) == 2 and not any(readers[1].encode() in f.read_bytes() for f in files)
    assert site.deliveries()[readers[1]] == ("cancelled", 1, "subscriber is unsubscribed")
    assert "2026-11-25: 0 queued, 2 sent, 0 failed, 0 expired, 0 bounced, 1 cancelled" in _status(site)


def test_a_send_killed_mid_run_loses_nothing_and_the_next_sends_at_most_one_twice(state_site: StateSite) -> None:
    site = state_site
    readers = _seeded(site, 300)
    slow = Collector()
    slow.delay = 0.005  # about 1.5 s for the list
    with smtp_server(slow) as (server, port):
        use_smtp(site, port)
        process = subprocess.Popen([sys.executable, "-m", "publisher", "send", "--lease", "1"], cwd=site.root,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_for_copies(server, 40, process)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        time.sleep(0.1)  # the message in flight, if any, is taken by the server or dropped
        accepted, recorded = sum(server.copies().values()), _counts(site).get("sent", 0)
        assert accepted < 300 and accepted - 1 <= recorded <= accepted, (accepted, recorded)
        again = run_cli("send", cwd=site.root)  # once the dead sender's lease (1 s) has run out
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"{300 - recorded} sent, 0 failed" in again.stdout, again.stdout
        copies = server.copies()
    assert set(copies) == set(readers), "nobody is lost"
    assert sum(copies.values()) - len(readers) <= 1, "at most the message in flight twice"
    assert _counts(site) == {"sent": 300}


def test_sigterm_finishes_the_message_in_flight_exits_130_and_the_next_send_finishes(state_site: StateSite) -> None:
    site = state_site
    readers = _seeded(site, 150)
    slow = Collector()
    slow.delay = 0.01  # about 1.5 s for the list
    with smtp_server(slow) as (server, port):
        use_smtp(site, port)
        process = subprocess.Popen([sys.executable, "-m", "publisher", "send"], cwd=site.root,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_for_copies(server, 20, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 130
        accepted, counts = sum(server.copies().values()), _counts(site)
        assert counts.get("sent", 0) == accepted < 150, "every accepted message is recorded, no more"
        assert counts.get("queued", 0) == 150 - accepted, counts
        again = run_cli("send", cwd=site.root)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"{150 - accepted} sent, 0 failed" in again.stdout, again.stdout
        assert server.copies() == dict.fromkeys(readers, 1), "exactly one copy each"
    assert f"{DIGEST}: 0 queued, 150 sent, 0 failed, 0 expired, 0 bounced, 0 cancelled" in _status(site)


# --- the Journal API on its own ------------------------------------------------------------------------------

def test_the_journal_queues_once_per_digest_and_claims_marks_and_counts(state_url: str, tmp_path: Path) -> None:
    where = locate(state_url, tmp_path, {}, "test")
    with open_store(where) as store:
        people, journal = Subscribers(store.conn), Journal(store)
        ids = {people.add(f"r{n}@example.org", f"Reader {n}", NOW).id: f"r{n}@example.org" for n in range(5)}
        people.remove("r4@example.org", NOW)
        store.record_digest(DIGEST, NOW, [], "News", "<p>News</p>", "News")
        assert journal.enqueue(DIGEST, NOW) == 4, "the active subscribers"
        assert journal.enqueue(DIGEST, NOW) == 0, "once per digest"
        store.checkpoint()
        order = sorted(i for i, a in ids.items() if a != "r4@example.org")
        first = journal.claim(DIGEST, "w1", 30, 2)
        second = journal.claim(DIGEST, "w2", 30, 10)
        assert [p.subscriber_id for p in first] == order[:2] and [p.subscriber_id for p in second] == order[2:]
        assert all(p.address == ids[p.subscriber_id] and p.status == "active" for p in first + second)
        assert journal.claim(DIGEST, "w3", 30, 10) == [], "held rows are not claimed twice"
        assert not journal.mark(first[0], "sent", NOW, worker="w2"), "only the holder marks its row"
        assert journal.mark(first[0], "sent", NOW, message_id="<m@x>", worker="w1")
        assert journal.mark(first[1], "failed", NOW, error="451 later", worker="w1", retry_in=60)
        assert journal.mark(second[0], "expired", NOW, error="452 full", worker="w2")
        assert journal.mark(second[1], "bounced", NOW, error="550 no such user", worker="w2")
        assert journal.claim(DIGEST, "w3", 30, 10) == [], "a refused row waits for its retry time"
        wait = journal.next_wait("w3")
        assert wait is not None and 55 < wait <= 60, wait
        assert journal.status() == [(DIGEST, {"queued": 0, "sent": 1, "failed": 1, "expired": 1, "bounced": 1,
                                              "cancelled": 0})]
        assert journal.problems() == sorted([
            Problem(DIGEST, first[1].subscriber_id, first[1].address, "failed", 1, "451 later"),
            Problem(DIGEST, second[0].subscriber_id, second[0].address, "expired", 1, "452 full")],
            key=lambda p: p.subscriber_id)
        assert (journal.pending_count(), journal.unfinished()) == (1, [DIGEST])


def test_a_lease_that_ran_out_is_taken_over_and_the_stale_holder_marks_nothing(state_url: str, tmp_path: Path) -> None:
    where = locate(state_url, tmp_path, {}, "test")
    with open_store(where) as store:
        people, journal = Subscribers(store.conn), Journal(store)
        for n in range(3):
            people.add(f"r{n}@example.org", "", NOW)
        store.record_digest(DIGEST, NOW, [], "News", "<p>News</p>", "News")
        assert journal.enqueue(DIGEST, NOW) == 3
        store.checkpoint()
        (stale,) = journal.claim(DIGEST, "stale", 0.3, 1)
        held = journal.claim(DIGEST, "fresh", 30, 5)
        assert len(held) == 2
        time.sleep(0.5)
        (taken,) = journal.claim(DIGEST, "taker", 30, 5)
        assert taken.subscriber_id == stale.subscriber_id, "the expired lease's row, and only it"
        assert journal.renew(DIGEST, [stale.subscriber_id], "stale", 30) == set(), "taken over: not renewed"
        assert not journal.mark(stale, "sent", NOW, worker="stale"), "the stale holder marks nothing"
        assert journal.renew(DIGEST, [taken.subscriber_id], "taker", 30) == {taken.subscriber_id}
        journal.release(DIGEST, [held[0].subscriber_id], "fresh")
        (again,) = journal.claim(DIGEST, "other", 30, 5)
        assert again.subscriber_id == held[0].subscriber_id, "a released row is claimable at once"
        assert journal.mark(taken, "sent", NOW, worker="taker")
        rows = {s: (st, w) for s, st, w in store.conn.exec_driver_sql(
            "SELECT subscriber_id, status, worker FROM deliveries")}
        assert rows[stale.subscriber_id] == ("sent", "taker"), "the row bears the worker that marked it"
        assert journal.pending_count() == 2
