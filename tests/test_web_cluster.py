"""`publisher serve` on several machines behind one proxy: two real `publisher serve` processes on two ports
share one PostgreSQL state (a database of the throwaway cluster of tests/pgserver.py). A reader subscribes on
one, confirms with the emailed link (aiosmtpd on 127.0.0.1) on the other, and unsubscribes from a delivered
digest on the first: the state says so after each step. Processes that start at once on an empty database
agree on one signing key (made once, kept in the state).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from email.message import EmailMessage
from pathlib import Path

import httpx
import sqlalchemy as sa

from publisher.config import load_settings
from publisher.deliver.tokens import signing_key
from publisher.state.schema import meta, subscribers
from publisher.store import open_store
from tests.conftest import CLOCK, SEED, run_cli
from tests.mailserver import Collector, free_port, smtp_server

CONFIG = """\
[site]
title = "Cluster Site"
url = "http://127.0.0.1:{port}/"
description = "Two web processes, one state"
timezone = "UTC"

[paths]
state = "{state}"

[email]
from = "Cluster <news@example.com>"
transport = "smtp"

[email.smtp]
host = "127.0.0.1"
port = {smtp}
security = "none"
timeout = 5
"""


class Serve:
    """`python -m publisher serve --port PORT` in a subprocess, its output in a file."""

    def __init__(self, root: Path, port: int, name: str) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.log = root.parent / f"{name}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "publisher", "serve", "--port", str(port)],
                                            cwd=root, stdout=out, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "subscribe", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"serve on {self.url} did not start: {self.log.read_text()}"
            time.sleep(0.1)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        return self.log.read_text()


@contextmanager
def two_servers(root: Path, state: str) -> Iterator[tuple[Serve, Serve, Collector]]:
    """A site on `state` (nothing in it yet) served by two processes started at the same moment; site.url
    names the first. Both must stop cleanly (exit 0, no traceback)."""
    root.mkdir(parents=True)
    (root / "articles").mkdir()
    shutil.copy(SEED, root / "articles" / SEED.name)
    ports = free_port(), free_port()
    with smtp_server() as (mail, smtp_port), ExitStack() as stack:
        (root / "publisher.toml").write_text(CONFIG.format(port=ports[0], state=state, smtp=smtp_port),
                                             encoding="utf-8")
        servers = Serve(root, ports[0], "first"), Serve(root, ports[1], "second")
        for server in servers:
            stack.callback(server.stop)
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1], mail
        for server in servers:
            log = server.stop()
            assert server.process.returncode == 0, log
            assert "Traceback" not in log and "ERROR" not in log, log


def form(client: httpx.Client, base: str) -> None:
    """GET the subscribe form at `base`: it has no token (double opt-in protects the list), only the honeypot."""
    page = client.get(base + "subscribe")
    assert page.status_code == 200 and 'name="website"' in page.text and "csrf" not in page.text, page.text[:300]


def messages(mail: Collector, address: str, count: int = 1, timeout: float = 15) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while len(found := mail.parsed(address)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(found) >= count, f"{count} message(s) for {address} expected, {len(found)} arrived"
    return found


def statuses(root: Path) -> dict[str, str]:
    """email -> status, as `publisher subscribers list --json` reads them from the state."""
    listed = run_cli("subscribers", "list", "--json", cwd=root, check=True)
    return {row["email"]: row["status"] for row in map(json.loads, listed.stdout.splitlines())}


def state_rows(url: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(the signing keys kept in the state, (email, status) of every subscriber), straight from the database."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            keys = list(conn.execute(sa.select(meta.c.value).where(meta.c.key == "secret")).scalars())
            people = [(r[0], r[1]) for r in conn.execute(sa.select(subscribers.c.email, subscribers.c.status))]
            return keys, people
    finally:
        engine.dispose()


def test_subscribe_on_one_confirm_on_the_other_unsubscribe_on_the_first(tmp_path: Path, pg_url: str) -> None:
    """Both servers start at the same moment on an empty database: one schema, one signing key (a link
    signed by one is good on the other); then a reader's whole way through the two."""
    root, address = tmp_path / "site", "reader@example.org"
    with two_servers(root, pg_url) as (first, second, mail):
        keys, people = state_rows(pg_url)
        assert len(keys) == 1 and people == [], "both started on an empty database: one signing key"
        with httpx.Client(timeout=10, headers={"X-Forwarded-For": "192.0.2.1"}) as browser:
            form(browser, first.url)  # the form of the first, posted to the second
            crossed = browser.post(second.url + "subscribe", data={"email": "crossed@example.org", "website": ""})
            assert crossed.status_code == 200 and "Check your inbox" in crossed.text, crossed.text[:300]
            form(browser, first.url)
            answer = browser.post(first.url + "subscribe", data={"email": address, "website": ""})
            assert answer.status_code == 200 and "Check your inbox" in answer.text
        assert statuses(root) == {"crossed@example.org": "pending", address: "pending"}

        text = messages(mail, address)[0].get_content()
        link = re.search(re.escape(first.url) + r"confirm\?token=\S+", text)
        assert link is not None, text
        confirmed = httpx.get(link.group(0).replace(first.url, second.url), timeout=10)
        assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text, confirmed.text[:300]
        assert statuses(root)[address] == "active"

        published = run_cli("publish", "--clock", CLOCK, cwd=root)
        assert published.returncode == 0 and "1 sent" in published.stdout, published.stdout + published.stderr
        digest = next(m for m in messages(mail, address, 2) if m["Subject"].startswith("Cluster Site"))
        found = re.search(r"<(http://[^>]+/unsubscribe\?token=[^>]+)>", digest["List-Unsubscribe"])
        assert found is not None and found.group(1).startswith(first.url + "unsubscribe?token=")
        gone = httpx.post(found.group(1), content=b"List-Unsubscribe=One-Click", timeout=10,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert gone.status_code == 200 and "You are unsubscribed" in gone.text
        assert statuses(root) == {"crossed@example.org": "pending", address: "unsubscribed"}

        stale = httpx.get(link.group(0).replace(first.url, second.url), timeout=10)
        assert stale.status_code == 410 and "no longer valid" in stale.text, "the second sees the first's change"
        keys, people = state_rows(pg_url)
        assert len(keys) == 1 and sorted(people) == [("crossed@example.org", "pending"), (address, "unsubscribed")]


THREADS = 8


def test_processes_making_the_signing_key_at_the_same_moment_end_with_one_key(tmp_path: Path, state_url: str) -> None:
    """Every store reads "no key yet" before any commits (a barrier), then each makes one: all end with the
    same key, and the state holds one."""
    (tmp_path / "publisher.toml").write_text(f'[site]\nurl = "https://example.com/"\n[paths]\nstate = "{state_url}"\n',
                                             encoding="utf-8")
    settings = load_settings(tmp_path / "publisher.toml", tmp_path)
    with open_store(settings.paths.state):
        pass  # the schema, made once
    barrier = threading.Barrier(THREADS)
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            with open_store(settings.paths.state) as store:
                barrier.wait(20)
                keys.append(signing_key(settings, store))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=make) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(keys) == THREADS
    assert len(set(keys)) == 1
    with open_store(settings.paths.state, write=False) as store:
        stored = list(store.conn.execute(sa.select(meta.c.value).where(meta.c.key == "secret")).scalars())
    assert [value.encode() for value in stored] == keys[:1]
