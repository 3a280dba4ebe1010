"""Deliver recorded digests through a transport, exactly once per subscriber (see journal.py).

Each run first finishes earlier digests whose delivery is unfinished, oldest first. The journal is the
queue: a sender claims a small batch of rows under a lease (renewed while it works), sends them, and
marks each one at once with an UPDATE fenced by its worker id; rows another sender holds are waited for
until that sender finishes them or its lease runs out. `publisher send` is one such sender (under the
run lock); `publisher send --worker` may run on any number of machines against one PostgreSQL state.

One reader never stops the others: a message that cannot be built, or that the server refuses for that
reader alone, marks that row and the queue moves on. SMTP 4xx: the row is `failed` with a retry time
(the backoff, doubled each time) and no lease, so any sender tries it again once it is due, up to
`email.max_retries` tries in one run, and up to `email.max_attempts` tries over all runs, after which it
is `expired` (given up, with its last error). 5xx: the row is `bounced` and the subscriber's bounce count
grows, in one transaction. Only connection failures count towards `email.max_connection_failures`
(consecutive ones stop the run with a clear error; the journal stays intact), and they do not use up a
row's attempts. `stop()` is asked before each message: a signal finishes the message in flight, records
it, gives back the rest of the batch, and stops. A database server restarted mid-run is waited for
(see worker.Patient). `email.rate` and `email.domain_rate` hold for all senders together (ratelimit.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from publisher.config import Settings
from publisher.deliver.dkim import signer
from publisher.deliver.journal import Journal, Pending
from publisher.deliver.message import MessageTemplate
from publisher.deliver.tokens import list_id, make_token, signing_key, unsubscribe_url
from publisher.deliver.transport import ConnectionFailure, Outgoing, PermanentFailure, SendFailure, Transport
from publisher.deliver.worker import (
    LEASE,
    Claims,
    Limit,
    Patient,
    Unlimited,
    check_worker_state,
    new_worker_id,
    shared_limit,
)
from publisher.errors import PublisherError
from publisher.plural import count
from publisher.store import Store

log = logging.getLogger(__name__)
PASSWORD_ENV = "PUBLISHER_SMTP_PASSWORD"
BACKOFF = 1.0  # seconds before the first retry of a 4xx; doubled each time
REASON_LINES = 10  # distinct reasons a report lists; the rest are summed up in one line
WAIT_SLICE = 0.5  # seconds: the longest sleep between two looks at the journal (and stop()) while waiting
IDLE = 0.05  # seconds: the shortest such sleep (a row another sender is claiming right now)
FOLLOW = 2.0  # seconds between two looks for a new digest with --follow
VERB = {"failed": "not sent", "expired": "not sent, given up after {n} tries", "bounced": "refused for good"}


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, done: int) -> None: ...


class DeliveryStopped(PublisherError):
    """Too many consecutive connection failures: the run stopped, the journal is intact."""


@dataclass
class DeliveryReport:
    """What one run did. `failed`: messages not delivered in this run, of which `expired` are given up for
    good (the others are tried again by the next run). `reasons`: (status, reason) -> messages, for the
    failed, expired and bounced ones."""

    max_attempts: int  # tries of one message over all runs before it is `expired` (email.max_attempts)
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    cancelled: int = 0
    expired: int = 0
    digests: list[str] = field(default_factory=list)
    stopped: bool = False  # by a signal
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)

    def problem_lines(self, limit: int = REASON_LINES) -> list[tuple[str, str]]:
        """(severity, line) per distinct reason, most messages first; past `limit`, one line for the rest."""
        reasons = self.reasons.most_common()
        lines = [_problem_line(status, reason, n, self.max_attempts) for (status, reason), n in reasons[:limit]]
        if len(reasons) > limit:
            rest = sum(n for _, n in reasons[limit:])
            lines.append(("error", f"{count(rest, 'message')} more not delivered for {len(reasons) - limit} other "
                                   "reasons; 'publisher -v send' names each"))
        return lines


def _problem_line(status: str, reason: str, n: int, max_attempts: int) -> tuple[str, str]:
    if status == "bounced":
        return "warning", f"{count(n, 'message')} refused for good (bounced): {reason}"
    if status == "expired":
        return "error", f"{count(n, 'message')} not sent and given up after {max_attempts} tries: {reason}"
    return "error", f"{count(n, 'message')} not sent: {reason}; 'publisher send' tries again"


def open_transport(settings: Settings) -> Transport:
    """The configured transport (SMTP is imported only when used)."""
    if settings.email.transport == "smtp":
        from publisher.deliver.smtp import SmtpTransport

        return SmtpTransport(settings.email.smtp, os.environ.get(PASSWORD_ENV), rate=settings.email.rate)
    from publisher.deliver.outbox import OutboxTransport

    return OutboxTransport(settings.email.outbox)


def _flat(text: str) -> str:
    return " ".join(text.split())


def _describe(error: Exception) -> str:
    """An error on one line; one the transport did not foresee is named by its type too."""
    text = _flat(str(error))
    if isinstance(error, SendFailure):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _reason(item: Pending, error: Exception) -> str:
    """Why this reader's message did not go, without the reader's address (the log line names it once)."""
    return _describe(error).removeprefix(f"{item.address}: ")


class Sender:
    """Sends the pending rows of every unfinished digest through one transport, claiming them in batches.
    `follow`: when nothing is left, keep looking for new digests until stop()."""

    def __init__(self, settings: Settings, store: Store, transport: Transport, clock: Callable[[], datetime], *,
                 stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, backoff: float = BACKOFF,
                 max_attempts: int | None = None, progress: Progress | None = None, worker: str | None = None,
                 lease: float = LEASE, follow: bool = False, limit: Limit | None = None) -> None:
        self.settings, self.store, self.transport, self.clock = settings, store, transport, clock
        self.stop, self.sleep, self.monotonic, self.backoff = stop, sleep, monotonic, backoff
        max_attempts = settings.email.max_attempts if max_attempts is None else max_attempts
        self.max_attempts, self.progress = max_attempts, progress
        self.worker, self.lease, self.follow = worker or new_worker_id(), lease, follow
        self.limit: Limit = limit or Unlimited()
        self.journal = Journal(store)
        self.db = Patient(store, settings.paths.state, sleep=sleep, monotonic=monotonic)
        self.claims = Claims(self.journal, self.db, self.worker, lease, monotonic)
        self.key = signing_key(settings, store)
        self.list_id = list_id(settings.site.url)
        self.report = DeliveryReport(max_attempts=max_attempts)
        self.connection_failures = 0
        self.sign = signer(settings.email.dkim)
        self.tries: dict[tuple[str, str], int] = {}  # 4xx tries of a row in this run
        self.templates: dict[str, MessageTemplate | None] = {}

    # --- the run: claim a batch, send it, look again ------------------------------------------------------------

    def run(self) -> DeliveryReport:
        self.claims.register()
        try:
            self._loop()
        finally:
            self.claims.close(self.report.stopped, self._counts())
        return self.report

    def _loop(self) -> None:
        if self.progress:
            self.progress.start(self.db(self.journal.pending_count))
        while True:
            claimed = self.claims.claims
            for digest_id in self.db(self.journal.unfinished):
                if not self._digest(digest_id):
                    return
            wait = self.db(self._next_wait)
            if wait is None and not self.follow:
                return
            shortest = 0.0 if self.claims.claims > claimed else IDLE  # no quick spin on rows being claimed
            pause = FOLLOW if wait is None else min(max(wait, shortest), WAIT_SLICE)
            if not self._pause(pause):
                self.report.stopped = wait is not None  # a --follow worker stopped while idle stops cleanly
                return

    def _next_wait(self) -> float | None:
        broken = [d for d, t in self.templates.items() if t is None]
        wait = self.journal.next_wait(self.worker, broken)
        self.store.checkpoint()  # no transaction stays open while the sender sleeps
        return wait

    def _pause(self, seconds: float) -> bool:
        """Sleep up to `seconds`, a slice at a time so that a stop is seen; False if stopped."""
        due = self.monotonic() + seconds
        while not self.stop():
            left = due - self.monotonic()
            if left <= 0:
                return True
            self.sleep(min(left, WAIT_SLICE))
        return False

    def _digest(self, digest_id: str) -> bool:
        """Claim and send the digest's claimable rows, batch after batch; False when stopped."""
        if digest_id not in self.report.digests:
            self.report.digests.append(digest_id)
        template = self._template(digest_id)
        if template is None:
            return True
        after = ""
        while batch := self.claims.claim(digest_id, after, self._counts()):
            after = batch[-1].subscriber_id
            if not self._batch(template, batch):
                return False
        return True

    def _batch(self, template: MessageTemplate, batch: list[Pending]) -> bool:
        for item in batch:
            if self.stop():
                self.report.stopped = True
                return False
            if self.claims.holds(item, self._counts()) and not self._one(template, item):
                self.report.stopped = True  # while it waited for its turn (the rate limit): given back
                return False
            self.claims.done(item)
        return True

    def _counts(self) -> tuple[int, int]:
        return self.report.sent, self.report.failed + self.report.bounced

    def _template(self, digest_id: str) -> MessageTemplate | None:
        """The digest's message, built once; None (and its rows left as they are) when it cannot be."""
        if digest_id in self.templates:
            return self.templates[digest_id]
        subject, html, text = self.db(lambda: self.store.digest_message(digest_id))
        template: MessageTemplate | None = None
        try:
            template = MessageTemplate(self.settings, digest_id, subject, html, text, self.clock())
        except Exception as e:  # one digest that cannot be built does not stop the others
            reason = f"digest {digest_id}: message not built: {_describe(e)}"
            log.error("%s", reason)
            waiting = self.db(lambda: sum(1 for _ in self.journal.pending(digest_id)))
            self.report.failed += waiting
            self.report.reasons["failed", reason] += waiting
        self.templates[digest_id] = template
        return template

    # --- one message ----------------------------------------------------------------------------------------------

    def _one(self, template: MessageTemplate, item: Pending) -> bool:
        """One try of one row; False when stopped while waiting for the rate limit (the row not tried)."""
        if item.status != "active":
            self._finish(item, "cancelled", f"subscriber is {item.status}")
            return True
        try:
            message = self._build(template, item)
        except Exception as e:  # whatever breaks one reader's message (name, address, signing) fails that reader
            self._finish(item, "failed", f"message not built: {_reason(item, e)}", warn=True)
            return True
        if not self.limit.acquire(item.address.rpartition("@")[2].lower()):
            return False
        self._send(template, item, message, self.tries.get((item.digest_id, item.subscriber_id), 0))
        return True

    def _build(self, template: MessageTemplate, item: Pending) -> Outgoing:
        url = unsubscribe_url(self.settings.site.url, make_token(self.key, self.list_id, item.subscriber_id))
        data = template.render(subscriber_id=item.subscriber_id, name=item.name, address=item.address,
                               unsubscribe_url=url)
        if self.sign:
            data = self.sign(data)
        return Outgoing(item.digest_id, item.subscriber_id, template.sender, item.address, data)

    def _send(self, template: MessageTemplate, item: Pending, message: Outgoing, tries: int) -> None:
        message_id = template.message_id(item.subscriber_id)
        try:
            self.transport.send(message)
        except ConnectionFailure as e:
            self._connection_failed(item, e)
            return
        except PermanentFailure as e:
            self._bounced(item, e, message_id)
        except SendFailure as e:
            self._refused_for_now(item, tries + 1, e, message_id)
        except PublisherError:
            raise  # the server cannot be used as configured (SmtpSetupError): no message can go
        except Exception as e:  # the transport failed this one message in a way it did not foresee
            self.transport.close()  # so that no half-open session meets the next message
            self._finish(item, "failed", _reason(item, e), warn=True)
            return
        else:
            self._finish(item, "sent", None, message_id=message_id)
        self.connection_failures = 0

    def _refused_for_now(self, item: Pending, tries: int, error: SendFailure, message_id: str) -> None:
        """4xx: tried again once its backoff has passed (by any sender), unless this run's or the row's tries
        are used up."""
        reason = _reason(item, error)
        self.tries[item.digest_id, item.subscriber_id] = tries
        if tries >= self.settings.email.max_retries or item.attempts + 1 >= self.max_attempts:
            self._finish(item, "failed", reason, message_id=message_id)
            return
        wait = self.backoff * 2 ** (tries - 1)
        if self._mark(item, "failed", message_id=message_id, error=reason, retry_in=wait):  # the try counts
            log.info("digest %s: subscriber %s <%s>: %s; trying again in %.1f s", item.digest_id,
                     item.subscriber_id, _flat(item.address), reason, wait)

    def _bounced(self, item: Pending, error: PermanentFailure, message_id: str) -> None:
        from publisher.deliver.subscribers import Subscribers

        now, reason = self.clock(), _reason(item, error)

        def work() -> bool:
            with self.db.atomic():  # the row and the bounce count together, or neither
                marked = self.journal.mark(item, "bounced", now, message_id=message_id, error=reason, commit=False,
                                           worker=self.worker)
                if marked:
                    Subscribers(self.store.conn).mark_bounce(item.subscriber_id, now,
                                                             self.settings.email.max_bounces)
            return marked

        if self.db(work):
            self._count(item, "bounced", reason)
        else:
            self.claims.lose(item, "bounced, but its lease ran out first")

    def _connection_failed(self, item: Pending, error: ConnectionFailure) -> None:
        self._finish(item, "failed", _reason(item, error), tried=False)
        self.connection_failures += 1
        if self.connection_failures >= self.settings.email.max_connection_failures:
            raise DeliveryStopped(f"{self.connection_failures} connection failures in a row, the last: {error}",
                                  "the journal is intact: run 'publisher send' again when the server is back")

    def _mark(self, item: Pending, status: str, *, message_id: str | None = None, error: str | None = None,
              tried: bool = True, retry_in: float | None = None) -> bool:
        """The fenced, committed mark; False (and a log line) when another worker has taken the row over."""
        marked = self.db(lambda: self.journal.mark(item, status, self.clock(), message_id=message_id, error=error,
                                                   tried=tried, worker=self.worker, retry_in=retry_in))
        if not marked:
            self.claims.lose(item, f"{'sent' if status == 'sent' else 'tried'}, but its lease ran out first")
        return marked

    def _finish(self, item: Pending, status: str, reason: str | None, *, message_id: str | None = None,
                tried: bool = True, warn: bool = False) -> None:
        """The row's outcome for this run, committed; a `failed` row out of attempts becomes `expired`."""
        if status == "failed" and tried and item.attempts + 1 >= self.max_attempts:
            status = "expired"
        if self._mark(item, status, message_id=message_id, error=reason, tried=tried):
            self._count(item, status, reason, warn=warn)

    def _count(self, item: Pending, status: str, reason: str | None, *, warn: bool = False) -> None:
        """Into the report, and one log line naming the reader for a message that did not go."""
        counter = "failed" if status == "expired" else status
        setattr(self.report, counter, getattr(self.report, counter) + 1)
        self.report.expired += status == "expired"
        if reason is not None and status in VERB:
            self.report.reasons[status, reason] += 1
            log.log(logging.WARNING if warn or status == "expired" else logging.INFO,
                    "digest %s: subscriber %s <%s>: %s: %s", item.digest_id, item.subscriber_id,
                    _flat(item.address), VERB[status].format(n=item.attempts + 1), reason)
        if self.progress:
            self.progress.advance(1)


def deliver_pending(settings: Settings, clock: Callable[[], datetime], stop: Callable[[], bool],
                    progress: Progress | None = None, *, worker: bool = False, follow: bool = False,
                    lease: float = LEASE) -> DeliveryReport:
    """Send what the journal says is unsent (what `publisher send` does): hold the run lock around it, unless
    `worker` (one of several senders on a PostgreSQL state, with no run lock: see send --worker)."""
    from publisher.store import open_store

    if worker:
        check_worker_state(settings.paths.state)
    with open_store(settings.paths.state) as store:
        from publisher.deliver.subscribers import Subscribers
        from publisher.safety import refuse_local_links

        # the CLI refuses earlier (before a digest is recorded); the scheduler's runs are refused here
        refuse_local_links(settings, (s.email for s in Subscribers(store.conn).active()))
        if settings.paths.state.is_sqlite:  # one sender per file, under the run lock: a lease is a dead run's
            Journal(store).release_all()
            store.checkpoint()
        limit = shared_limit(settings, stop)
        unlimited = replace(settings, email=replace(settings.email, rate=0.0))  # the shared limit paces it
        transport = open_transport(unlimited)
        try:
            sender = Sender(settings, store, transport, clock, stop=stop, progress=progress, lease=lease,
                            follow=follow, limit=limit)
            if not settings.paths.state.is_sqlite:
                sender.db.autocommit()
            try:
                return sender.run()
            finally:
                sender.db.strict()
        finally:
            transport.close()
            limit.close()
