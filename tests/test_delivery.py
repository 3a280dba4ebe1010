"""Delivering the digest exactly once: outbox and SMTP (a real aiosmtpd server), faults, crashes."""

from __future__ import annotations

import email
import email.policy
import os
import random
import re
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import CLOCK, Site, run_cli
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
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert f"Unsubscribe: {url.group(1)}" in text and f'href="{url.group(1)}"' in html
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
        result = site.publish()
        assert "2 sent, 1 failed, 1 bounced" in result.stdout, result.stdout + result.stderr
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert server.copies() == {readers[0]: 1, readers[3]: 1}
        listed = run_cli("subscribers", "list", "--status", "bounced", cwd=site.root)
        assert readers[1] in listed.stdout
        collector.times[readers[2]] = 0  # the server takes it now
        again = run_cli("send", cwd=site.root)
        assert "1 sent, 0 failed, 0 bounced" in again.stdout, again.stdout + again.stderr
        assert server.copies() == {readers[0]: 1, readers[2]: 1, readers[3]: 1}
        (message,) = server.parsed(readers[2])
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


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
