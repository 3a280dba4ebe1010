"""Delivering the digest exactly once: outbox and SMTP (a real aiosmtpd server), faults, crashes."""

from __future__ import annotations

import email
import email.policy
import logging
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from publisher.config import load_settings
from publisher.deliver.journal import Journal
from publisher.deliver.send import DeliveryReport, Sender, open_transport
from publisher.deliver.transport import Outgoing
from publisher.store import open_store
from tests.conftest import CLOCK, Site, run_cli
from tests.mailcheck import parse, strict_parts
from tests.mailserver import Collector, free_port, smtp_server


def use_smtp(site: Site, port: int, extra: str = "") -> None:
    site.configure(f'[email]\nfrom = "Test Site <news@example.com>"\ntransport = "smtp"\n{extra}\n'
                   f'[email.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n')


def test_outbox_gets_one_eml_per_subscriber_with_a_personal_unsubscribe_link(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(3)
    result = site.publish()
    assert result.returncode == 0, result.stderr
    assert "delivery (outbox" in result.stdout and "3 sent" in result.stdout
    files = sorted((site.root / "outbox" / "2026-11-25").glob("*.eml"))
    assert len(files) == 3
    links = set()
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        assert message["To"].addresses[0].addr_spec in readers
        assert message["Message-ID"] == f"<2026-11-25.{path.stem}@example.com>"
        url = re.search(r"<(https://example.com/unsubscribe\?token=[^>]+)>", message["List-Unsubscribe"])
        assert url is not None and path.stem in url.group(1)
        parts = strict_parts(path.read_bytes())  # every byte decoded with the declared charset, strictly
        assert f"Unsubscribe: {url.group(1)}" in parts["plain"] and f'href="{url.group(1)}"' in parts["html"]
        links.add(url.group(1))
    assert len(links) == 3
    again = site.publish()
    assert "0 sent" in again.stdout, "a re-run sends nothing twice"
    status = run_cli("send", "--status", cwd=site.root)
    assert "2026-11-25: 0 queued, 3 sent" in status.stdout


def test_smtp_delivery_with_bounce_and_temporary_failure(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(4)
    collector = Collector()
    collector.replies = {readers[1]: "550 5.1.1 No such user", readers[2]: "451 4.3.0 Try again later"}
    collector.times = {readers[1]: 99, readers[2]: 99}
    with smtp_server(collector) as (server, port):
        use_smtp(site, port, "max_bounces = 1\nmax_retries = 2")
        result = run_cli("-v", "publish", "--clock", CLOCK, cwd=site.root)
        assert "2 sent, 1 failed, 1 bounced" in result.stdout, result.stdout + result.stderr
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert server.copies() == {readers[0]: 1, readers[3]: 1}
        (retry,) = [line for line in result.stderr.splitlines() if "trying again in" in line]
        assert retry.count(readers[2]) == 1 and "451 4.3.0 Try again later" in retry, retry
        problems = sorted(line for line in result.stderr.splitlines() if line.startswith(("error:", "warning:")))
        assert problems == [f"error: 1 message not sent: 127.0.0.1:{port} answered 451 4.3.0 Try again later; "
                            "'publisher send' tries again",
                            f"warning: 1 message refused for good (bounced): 127.0.0.1:{port} answered 550 5.1.1 "
                            "No such user"], problems
        listed = run_cli("subscribers", "list", "--status", "bounced", cwd=site.root)
        assert readers[1] in listed.stdout
        collector.times[readers[2]] = 0  # the server takes it now
        again = run_cli("send", cwd=site.root)
        assert "1 sent, 0 failed, 0 bounced" in again.stdout, again.stdout + again.stderr
        assert server.copies() == {readers[0]: 1, readers[2]: 1, readers[3]: 1}
        (data,) = server.raw(readers[2])
        message = parse(data)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert "First news" in strict_parts(data)["html"]


def test_server_down_stops_after_consecutive_failures_and_the_journal_resumes(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(5)
    port = free_port()
    use_smtp(site, port, "max_connection_failures = 3")
    down = site.publish()
    assert down.returncode == 1 and "Traceback" not in down.stderr
    (line,) = [x for x in down.stderr.splitlines() if x.startswith("error:")]
    assert "3 connection failures in a row" in line and "journal is intact" in line
    with smtp_server(None) as (server, actual_port):
        config = site.root / "publisher.toml"
        config.write_text(config.read_text().replace(f"port = {port}", f"port = {actual_port}"), encoding="utf-8")
        resumed = run_cli("send", "--resume", cwd=site.root)
        assert "5 sent" in resumed.stdout, resumed.stdout + resumed.stderr
        assert server.copies() == dict.fromkeys(readers, 1)


def _send_process(site: Site) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "publisher", "send"], cwd=site.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _all_sent(site: Site, count: int) -> bool:
    return f"0 queued, {count} sent, 0 failed" in run_cli("send", "--status", cwd=site.root).stdout


def test_sigkill_at_random_points_loses_nothing_and_duplicates_at_most_one_per_kill(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(500)
    rng = random.Random(20261125)
    slow = Collector()
    slow.delay = 0.003  # about 2 s for the whole list: time to be killed
    with smtp_server(slow) as (server, port):
        use_smtp(site, port)
        assert site.publish("--no-send").returncode == 0
        kills = 0
        while not _all_sent(site, 500) and kills < 8:
            process = _send_process(site)
            time.sleep(rng.uniform(0.4, 1.6))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(timeout=60)
        final = run_cli("send", cwd=site.root)
        assert final.returncode == 0, final.stderr
        assert _all_sent(site, 500)
        copies = server.copies()
        assert set(copies) == set(readers), "nobody is skipped"
        extra = sum(copies.values()) - len(readers)
        assert kills >= 1 and extra <= kills, (kills, extra)


def test_sigterm_finishes_the_message_in_flight_and_the_next_run_finishes_the_list(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(300)
    slow = Collector()
    slow.delay = 0.003
    with smtp_server(slow) as (server, port):
        use_smtp(site, port)
        assert site.publish("--no-send").returncode == 0
        process = _send_process(site)
        deadline = time.monotonic() + 30
        while sum(server.copies().values()) < 20 and time.monotonic() < deadline:  # sending has begun
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in (0, 130)
        assert run_cli("send", cwd=site.root).returncode == 0
        assert server.copies() == dict.fromkeys(readers, 1), "exactly one copy each"


def test_preview_to_sends_a_test_copy_without_touching_the_journal(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    site.subscribe(2)
    with smtp_server(None) as (server, port):
        use_smtp(site, port)
        result = run_cli("preview", "--to", "editor@example.org", "--clock", CLOCK, cwd=site.root)
        assert result.returncode == 0, result.stderr
        assert server.copies() == {"editor@example.org": 1}
        assert "no digest has been queued" in run_cli("send", "--status", cwd=site.root).stdout


def test_password_never_reaches_output(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    site.subscribe(1)
    use_smtp(site, free_port(), 'max_connection_failures = 1')
    config = site.root / "publisher.toml"
    config.write_text(config.read_text().replace('security = "none"', 'security = "none"\nusername = "bob"'))
    env = {**os.environ, "PUBLISHER_SMTP_PASSWORD": "s3cret-Pa55"}
    result = subprocess.run([sys.executable, "-m", "publisher", "-v", "publish"], cwd=site.root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "s3cret-Pa55" not in result.stdout + result.stderr
    assert not any("s3cret-Pa55" in p.read_text(errors="ignore") for p in Path(site.root).rglob("*") if p.is_file()
                   and p.suffix in (".txt", ".log", ".eml", ".html"))


def test_dkim_signature_verifies(site: Site) -> None:
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (site.root / "dkim.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                                           serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    site.write("one.md", "---\ntitle: Signed news\n---\nSomething happened.\n")
    site.subscribe(1)
    site.configure('[email]\nfrom = "Test Site <news@example.com>"\n'
                    '[email.dkim]\nselector = "s1"\ndomain = "example.com"\nprivate_key = "dkim.pem"\n')
    assert site.publish().returncode == 0
    (path,) = (site.root / "outbox" / "2026-11-25").glob("*.eml")
    data = path.read_bytes()
    assert data.startswith(b"DKIM-Signature:")
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"s1._domainkey.example.com." else b""

    assert dkim.verify(data, dnsfunc=dns)
    assert not dkim.verify(data.replace(b"Signed news", b"Forged news"), dnsfunc=dns)


# --- one reader never stops the others; retries that block nobody; the reasons told ---------------------------

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
BACKOFF = 0.1  # seconds before the first retry of a 4xx in these tests (1 s in real runs)


class FakeTime:
    """The monotonic clock and the sleep given to a Sender: the real ones, each sleep recorded. (Retry times
    are on the database clock, shared by every sender, so the time must really pass: the tests give a
    short backoff.)"""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    @property
    def slept(self) -> float:
        return sum(self.sleeps)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        time.sleep(seconds)


def _send_in_process(site: Site, fake: FakeTime, prepare: Callable[[Sender], None] = lambda s: None,
                     **options: Any) -> DeliveryReport:
    """What `publisher send` does, in this process: the real settings, state file and transport."""
    settings = load_settings(site.root / "publisher.toml", site.root)
    with open_store(settings.paths.state) as store:
        transport = open_transport(settings)
        try:
            options.setdefault("backoff", BACKOFF)
            sender = Sender(settings, store, transport, lambda: NOW, sleep=fake.sleep, monotonic=fake.monotonic,
                            **options)
            prepare(sender)
            return sender.run()
        finally:
            transport.close()


def _rows(site: Site) -> dict[str, tuple[str, int, str | None]]:
    """address -> (status, attempts, error) of the journal rows, read straight from the SQLite file."""
    with sqlite3.connect(site.state) as conn:
        rows = conn.execute("SELECT s.address, d.status, d.attempts, d.error FROM deliveries d "
                            "JOIN subscribers s ON s.id = d.subscriber_id").fetchall()
    return {address: (status, attempts, error) for address, status, attempts, error in rows}


def test_a_reader_refused_for_now_is_retried_after_the_pass_and_blocks_nobody(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(5)
    greylisting = Collector()
    greylisting.replies, greylisting.times = {readers[1]: "451 4.7.1 Greylisted, come back later"}, {readers[1]: 2}
    with smtp_server(greylisting) as (server, port):
        use_smtp(site, port)  # max_retries 3: refused twice, then taken
        assert site.publish("--no-send").returncode == 0
        fake = FakeTime()
        report = _send_in_process(site, fake)
        assert server.order()[-1] == readers[1], "every other reader went first"
    assert (report.sent, report.failed) == (5, 0)
    first, second = sorted(fake.sleeps)[-2:]  # besides, at most a short look or two at the journal
    assert first == pytest.approx(BACKOFF, abs=0.03) and second == pytest.approx(2 * BACKOFF, abs=0.03), \
        "the backoff doubles, and is waited once, after the pass"
    assert fake.slept < 3 * BACKOFF + 0.2, fake.sleeps
    assert greylisting.refused[readers[1]] == 2
    assert _rows(site)[readers[1]] == ("sent", 3, None)


def test_a_reader_refused_on_every_run_expires_after_the_cap_with_its_last_error(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(3)
    full = Collector()
    full.replies = {readers[0]: "452 4.2.2 Mailbox full"}  # always
    with smtp_server(full) as (_server, port):
        use_smtp(site, port, "max_retries = 2")
        assert site.publish("--no-send").returncode == 0
        first = _send_in_process(site, FakeTime(), max_attempts=3)
        assert (first.sent, first.failed, first.expired) == (2, 1, 0)
        assert _rows(site)[readers[0]][:2] == ("failed", 2)
        second = _send_in_process(site, FakeTime(), max_attempts=3)
        third = _send_in_process(site, FakeTime(), max_attempts=3)
    reason = f"127.0.0.1:{port} answered 452 4.2.2 Mailbox full"
    assert (second.sent, second.failed, second.expired) == (0, 1, 1)
    assert second.problem_lines() == [("error", f"1 message not sent and given up after 3 tries: {reason}")]
    assert _rows(site)[readers[0]] == ("expired", 3, reason)
    assert third.digests == [] and full.refused[readers[0]] == 3, "an expired row is not tried again"
    assert "0 queued, 2 sent, 0 failed, 1 expired" in run_cli("send", "--status", cwd=site.root).stdout
    with open_store(site.state) as store:
        (problem,) = Journal(store).problems()
    assert (problem.address, problem.status, problem.attempts, problem.error) == (readers[0], "expired", 3, reason)


def test_a_message_that_cannot_be_built_fails_alone_with_one_line_naming_the_reader(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(4)

    def failing_signer(sender: Sender) -> None:  # a fault in one reader's message, whatever its cause
        def sign(data: bytes) -> bytes:
            if readers[2].encode() in data:
                raise ValueError("the signing key refused\nthis message")
            return data
        sender.sign = sign

    with smtp_server() as (server, port):
        use_smtp(site, port)
        assert site.publish("--no-send").returncode == 0
        with caplog.at_level(logging.WARNING, logger="publisher.deliver.send"):
            report = _send_in_process(site, FakeTime(), failing_signer)
        assert server.copies() == {r: 1 for r in readers if r != readers[2]}
    reason = "message not built: ValueError: the signing key refused this message"
    assert (report.sent, report.failed) == (3, 1)
    assert _rows(site)[readers[2]] == ("failed", 1, reason)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert readers[2] in line and line.endswith(reason) and "\n" not in line, line
    assert report.problem_lines() == [("error", f"1 message not sent: {reason}; 'publisher send' tries again")]


def test_an_error_the_transport_did_not_foresee_fails_that_message_and_a_new_session_takes_the_rest(
        site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(4)
    closed: list[str] = []

    def flaky_for_one(sender: Sender) -> None:  # the real SMTP transport, failing one message its own way
        real = sender.transport

        class Flaky:
            def send(self, message: Outgoing) -> None:
                if message.recipient == readers[1]:
                    raise ValueError("prohibited character in the envelope")
                real.send(message)

            def close(self) -> None:
                closed.append("closed")
                real.close()

        sender.transport = Flaky()

    with smtp_server() as (server, port):
        use_smtp(site, port)
        assert site.publish("--no-send").returncode == 0
        report = _send_in_process(site, FakeTime(), flaky_for_one)
        assert server.copies() == {r: 1 for r in readers if r != readers[1]}
    assert (report.sent, report.failed, closed) == (3, 1, ["closed"])
    assert _rows(site)[readers[1]] == ("failed", 1, "ValueError: prohibited character in the envelope")


def test_an_address_the_message_cannot_carry_fails_alone_and_the_queue_moves_on(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(3)
    idn, first = "δοκιμή@παράδειγμα.δοκιμή", "0" * 32  # as an earlier version accepted it; first in line
    with sqlite3.connect(site.state) as conn:
        conn.execute("INSERT INTO subscribers (id, email, address, name, status, bounces, created, changed) "
                     "VALUES (?, ?, ?, '', 'active', 0, ?, ?)", (first, idn, idn, CLOCK, CLOCK))
    with smtp_server() as (server, port):
        use_smtp(site, port)
        result = run_cli("-v", "publish", "--clock", CLOCK, cwd=site.root)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
        copies = server.copies()
        assert {r: copies[r] for r in readers} == dict.fromkeys(readers, 1)
        for reader in readers:
            strict_parts(server.raw(reader)[0])
    status, _, error = _rows(site)[idn]
    assert status in ("sent", "failed", "bounced"), status
    assert sum(copies.values()) == len(readers) + (status == "sent")
    if status != "sent":  # today the message cannot be built; with SMTPUTF8 missing it is refused
        assert error and [line for line in result.stderr.splitlines() if first in line and error in line]


def test_a_refused_connection_below_the_limit_says_why_and_uses_no_attempt(site: Site) -> None:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened.\n")
    readers = site.subscribe(2)
    port = free_port()
    use_smtp(site, port)  # max_connection_failures 10: the run goes to the end
    result = site.publish()
    assert result.returncode == 1 and "0 sent, 2 failed" in result.stdout and "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: 2 messages not sent: 127.0.0.1:{port}: cannot connect: ") and \
        "refused" in line and line.endswith("; 'publisher send' tries again"), line
    rows = _rows(site)
    assert {rows[r][:2] for r in readers} == {("failed", 0)}, "the server was down: no attempt used up"
