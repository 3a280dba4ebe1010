"""Exactly once, proven deterministically: `publisher send` dies (os._exit, no cleanup, as under SIGKILL) at
one chosen step of one chosen message, then `publisher send` runs again. Real parts: aiosmtpd on 127.0.0.1,
the SQLite state file, the CLI in a subprocess. The only test code is in the dying process: it wraps the
real transport and Store.checkpoint and exits at the Nth message.

Steps: before the transport is called (nothing reached the server), right after the server accepted the
message (not yet in the journal), and after the journal row is marked but before it is committed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Site, run_cli
from tests.mailcheck import parse, strict_parts
from tests.mailserver import Collector, smtp_server

CRASH = 86  # the exit status of the process that died at the chosen step
READERS = 6
NTH = 3  # the message in flight when the process dies

# Run in the dying subprocess: argv = step, n. Wraps the real transport and the real commit.
DYING_SEND = r"""
import os
import sys

from publisher import cli
from publisher.deliver import send
from publisher.deliver.subscribers import Subscribers
from publisher.store import Store

step, n = sys.argv[1], int(sys.argv[2])
calls = 0
armed = False  # the next commit is the one to die before


def die():
    os._exit(86)


class Dying:
    def __init__(self, inner):
        self.inner = inner

    def send(self, message):
        global calls, armed
        calls += 1
        if step == "before-send" and calls == n:
            die()
        self.inner.send(message)
        if step == "after-accept" and calls == n:
            die()
        armed = armed or (step == "before-commit" and calls == n)

    def close(self):
        self.inner.close()


real_open, real_checkpoint, real_bounce = send.open_transport, Store.checkpoint, Subscribers.mark_bounce


def checkpoint(self):
    if armed:
        die()
    real_checkpoint(self)


def mark_bounce(self, *args, **kwargs):
    global armed
    armed = armed or step == "after-bounce-count"
    return real_bounce(self, *args, **kwargs)


send.open_transport = lambda settings: Dying(real_open(settings))
Store.checkpoint = checkpoint
Subscribers.mark_bounce = mark_bounce
sys.argv = ["publisher", "send"]
cli.main()
"""


def _dying_send(site: Site, step: str, n: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", DYING_SEND, step, str(n)], cwd=site.root, capture_output=True,
                          text=True, timeout=120)


def _journal(site: Site) -> dict[str, str]:
    """address -> status of the one digest's rows, read straight from the SQLite file."""
    with sqlite3.connect(site.state) as conn:
        rows = conn.execute("SELECT s.address, d.status FROM deliveries d JOIN subscribers s "
                            "ON s.id = d.subscriber_id").fetchall()
    return dict(rows)


def _ready(site: Site, port: int, readers: int) -> list[str]:
    site.write("one.md", "---\ntitle: First news\n---\nSomething happened: café, 東京, 🎉.\n")
    addresses = site.subscribe(readers)
    site.configure(f'[email]\nfrom = "Test Site <news@example.com>"\ntransport = "smtp"\n'
                   f'[email.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n')
    published = site.publish("--no-send")
    assert published.returncode == 0, published.stderr
    assert set(_journal(site).values()) == {"queued"}
    return addresses


@pytest.mark.parametrize(("step", "reached_server"), [("before-send", NTH - 1), ("after-accept", NTH),
                                                      ("before-commit", NTH)])
def test_killed_at_one_step_then_resumed_every_reader_gets_it_once_but_the_one_in_flight(
        site: Site, step: str, reached_server: int) -> None:
    with smtp_server(Collector()) as (server, port):
        readers = _ready(site, port, READERS)
        died = _dying_send(site, step, NTH)
        assert died.returncode == CRASH, f"did not die at {step}: {died.returncode} {died.stderr}"
        arrived = server.order()
        assert len(arrived) == reached_server, arrived
        journal = _journal(site)
        assert sorted(journal.values()).count("sent") == NTH - 1, journal  # only what was committed
        assert {r for r, s in journal.items() if s == "sent"} == set(arrived[:NTH - 1])

        again = run_cli("send", cwd=site.root)
        assert again.returncode == 0, again.stdout + again.stderr
        in_flight = arrived[NTH - 1:] if step != "before-send" else []
        assert server.copies() == {r: 2 if r in in_flight else 1 for r in readers}, "nothing lost, one duplicate"
        assert set(_journal(site).values()) == {"sent"}
        for reader in readers:
            copies = server.raw(reader)
            assert len({parse(c)["Message-ID"] for c in copies}) == 1, "a duplicate keeps its Message-ID"
            assert "東京" in strict_parts(copies[0])["plain"]


def test_killed_between_the_bounce_count_and_its_commit_the_bounce_is_counted_once(site: Site) -> None:
    refusing = Collector()
    with smtp_server(refusing) as (server, port):
        readers = _ready(site, port, 4)
        refusing.replies = {readers[0]: "550 5.1.1 No such user"}  # always
        died = _dying_send(site, "after-bounce-count", 1)
        assert died.returncode == CRASH, died.stderr
        assert _bounces(site, readers[0]) == (0, "queued"), "the row and its count are lost together"
        again = run_cli("send", cwd=site.root)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "1 bounced" in again.stdout
        assert _bounces(site, readers[0]) == (1, "bounced")
        assert server.copies() == dict.fromkeys(readers[1:], 1)


def _bounces(site: Site, address: str) -> tuple[int, str]:
    """The subscriber's bounce count and the status of its journal row."""
    with sqlite3.connect(Path(site.state)) as conn:
        row = conn.execute("SELECT s.bounces, d.status FROM subscribers s JOIN deliveries d "
                           "ON s.id = d.subscriber_id WHERE s.address = ?", (address,)).fetchone()
    return int(row[0]), str(row[1])
