"""Deliver recorded digests through a transport, exactly once per subscriber (see journal.py).

Each run first finishes earlier digests whose delivery is unfinished, oldest first. SMTP 4xx: tried
again with exponential backoff up to `email.max_retries`, then left `failed` for the next run. 5xx:
the row is `bounced` and the subscriber's bounce count grows. Consecutive connection failures stop
the run with a clear error after `email.max_connection_failures`; the journal stays intact. `stop()`
is asked before each message: a signal finishes the message in flight, records it, and stops.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from publisher.config import Settings
from publisher.deliver.dkim import signer
from publisher.deliver.journal import Journal, Pending
from publisher.deliver.message import MessageTemplate
from publisher.deliver.tokens import list_id, make_token, signing_key, unsubscribe_url
from publisher.deliver.transport import ConnectionFailure, Outgoing, PermanentFailure, TemporaryFailure, Transport
from publisher.errors import PublisherError
from publisher.store import Store

log = logging.getLogger(__name__)
PASSWORD_ENV = "PUBLISHER_SMTP_PASSWORD"
BACKOFF = 1.0  # seconds before the first retry of a 4xx; doubled each time


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, done: int) -> None: ...


class DeliveryStopped(PublisherError):
    """Too many consecutive connection failures: the run stopped, the journal is intact."""


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    cancelled: int = 0
    digests: list[str] = field(default_factory=list)
    stopped: bool = False  # by a signal


def open_transport(settings: Settings) -> Transport:
    """The configured transport (SMTP is imported only when used)."""
    if settings.email.transport == "smtp":
        from publisher.deliver.smtp import SmtpTransport

        return SmtpTransport(settings.email.smtp, os.environ.get(PASSWORD_ENV), rate=settings.email.rate)
    from publisher.deliver.outbox import OutboxTransport

    return OutboxTransport(settings.email.outbox)


def _attempt(transport: Transport, message: Outgoing, retries: int, sleep: Callable[[float], None],
             backoff: float) -> tuple[str, str | None]:
    """Send with retries on 4xx: ("sent" | "failed" | "bounced", error). ConnectionFailure propagates."""
    for attempt in range(retries):
        try:
            transport.send(message)
            return "sent", None
        except PermanentFailure as e:
            return "bounced", str(e)
        except TemporaryFailure as e:
            if attempt + 1 >= retries:
                return "failed", str(e)
            log.info("%s: %s; trying again in %.1f s", message.recipient, e, backoff * 2**attempt)
            sleep(backoff * 2**attempt)
    return "failed", "no attempt made"


class Sender:
    """Sends the pending rows of every unfinished digest through one transport."""

    def __init__(self, settings: Settings, store: Store, transport: Transport, clock: Callable[[], datetime], *,
                 stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep,
                 backoff: float = BACKOFF, progress: Progress | None = None) -> None:
        self.settings, self.store, self.transport, self.clock = settings, store, transport, clock
        self.stop, self.sleep, self.backoff, self.progress = stop, sleep, backoff, progress
        self.journal = Journal(store)
        self.key = signing_key(settings, store)
        self.list_id = list_id(settings.site.url)
        self.report = DeliveryReport()
        self.connection_failures = 0
        self.sign = signer(settings.email.dkim)

    def run(self) -> DeliveryReport:
        if self.progress:
            self.progress.start(self.journal.pending_count())
        for digest_id in self.journal.unfinished():
            self.report.digests.append(digest_id)
            subject, html, text = self.store.digest_message(digest_id)
            template = MessageTemplate(self.settings, digest_id, subject, html, text, self.clock())
            for item in self.journal.pending(digest_id):
                if self.stop():
                    self.report.stopped = True
                    return self.report
                self._one(template, item)
                if self.progress:
                    self.progress.advance(1)
        return self.report

    def _one(self, template: MessageTemplate, item: Pending) -> None:
        if item.status != "active":
            self.journal.mark(item, "cancelled", self.clock(), error=f"subscriber is {item.status}")
            self.report.cancelled += 1
            return
        url = unsubscribe_url(self.settings.site.url, make_token(self.key, self.list_id, item.subscriber_id))
        data = template.render(subscriber_id=item.subscriber_id, name=item.name, address=item.address,
                               unsubscribe_url=url)
        if self.sign:
            data = self.sign(data)
        message = Outgoing(item.digest_id, item.subscriber_id, template.sender, item.address, data)
        try:
            outcome, error = _attempt(self.transport, message, self.settings.email.max_retries, self.sleep,
                                      self.backoff)
        except ConnectionFailure as e:
            self._connection_failed(item, e)
            return
        self.connection_failures = 0
        now = self.clock()
        self.journal.mark(item, outcome, now, message_id=template.message_id(item.subscriber_id), error=error)
        setattr(self.report, outcome, getattr(self.report, outcome) + 1)
        if outcome == "bounced":
            from publisher.deliver.subscribers import Subscribers

            Subscribers(self.store.conn).mark_bounce(item.subscriber_id, now, self.settings.email.max_bounces)
            self.store.checkpoint()

    def _connection_failed(self, item: Pending, error: ConnectionFailure) -> None:
        self.journal.mark(item, "failed", self.clock(), error=str(error))
        self.report.failed += 1
        self.connection_failures += 1
        if self.connection_failures >= self.settings.email.max_connection_failures:
            raise DeliveryStopped(f"{self.connection_failures} connection failures in a row, the last: {error}",
                                  "the journal is intact: run 'publisher send' again when the server is back")


def deliver_pending(settings: Settings, clock: Callable[[], datetime], stop: Callable[[], bool],
                    progress: Progress | None = None) -> DeliveryReport:
    """Send what the journal says is unsent (what `publisher send` does). Hold the run lock around it."""
    from publisher.store import open_store

    with open_store(settings.paths.state) as store:
        transport = open_transport(settings)
        try:
            return Sender(settings, store, transport, clock, stop=stop, progress=progress).run()
        finally:
            transport.close()
