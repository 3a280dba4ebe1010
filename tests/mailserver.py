"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the tests, with a free port and chosen faults."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Collector:
    """Keeps every message it accepts; answers `replies[recipient]` (e.g. '550 5.1.1 no such user')
    instead, for as many times as `times[recipient]` says (default: always)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.replies: dict[str, str] = {}
        self.times: dict[str, int] = {}
        self.delay = 0.0  # seconds before accepting each message: a slower server, to interrupt a run
        self.refused: Counter[str] = Counter()  # recipients refused at RCPT, how many times
        self.lock = threading.Lock()

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        """Offer PIPELINING (RFC 2920) as Postfix does, so delivery tests take the pipelined path (aiosmtpd
        reads pipelined commands but does not say so)."""
        session.host_name = hostname  # the 5-argument hook must set it (aiosmtpd 1.4)
        return [*responses[:-1], "250-PIPELINING", *responses[-1:]]

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        reply = self.replies.get(address)
        if reply and self.times.get(address, 1) > 0:
            if address in self.times:
                self.times[address] -= 1
            self.refused[address] += 1
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append((rcpt, bytes(envelope.original_content or envelope.content)))
        return "250 Message accepted"

    def copies(self) -> Counter[str]:
        with self.lock:
            return Counter(rcpt for rcpt, _ in self.messages)

    def order(self) -> list[str]:
        """The recipients of the accepted messages, in the order they arrived."""
        with self.lock:
            return [rcpt for rcpt, _ in self.messages]

    def raw(self, recipient: str) -> list[bytes]:
        """The bytes of every message accepted for `recipient`, as they came over the wire (CRLF)."""
        with self.lock:
            return [data for rcpt, data in self.messages if rcpt == recipient]

    def parsed(self, recipient: str) -> list[EmailMessage]:
        with self.lock:
            found = [data for rcpt, data in self.messages if rcpt == recipient]
        return [email.message_from_bytes(d, policy=email.policy.default) for d in found]


@contextmanager
def smtp_server(collector: Collector | None = None) -> Iterator[tuple[Collector, int]]:
    collector = collector or Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield collector, port
    finally:
        controller.stop()
