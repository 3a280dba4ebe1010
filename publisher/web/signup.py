"""Double opt-in: the confirmation link and email (the pending rows and their confirmation are
`Subscribers.request` and `Subscribers.confirm`). Nobody becomes active without a confirmation link.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from publisher.config import Settings
from publisher.deliver.dkim import signer
from publisher.deliver.message import CRLF, header_line, mailbox_line, one_line, sendable
from publisher.deliver.send import open_transport
from publisher.deliver.subscribers import Subscriber
from publisher.deliver.tokens import list_id
from publisher.deliver.transport import Outgoing, SendFailure
from publisher.errors import PublisherError
from publisher.render.templates import render
from publisher.web.signed import confirm_token
from publisher.web.welcome import welcome_message

log = logging.getLogger(__name__)
EMAIL_TEMPLATE = "confirm-email.txt.j2"
OUTBOX_FOLDER = "confirm"  # the outbox transport writes outbox/confirm/<subscriber id>.eml


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def confirmation_link(settings: Settings, key: bytes, subscriber_id: str, now: datetime,
                      hours: int) -> tuple[str, datetime]:
    """(link, expiry time) of a new confirmation link."""
    issued = int(now.timestamp())
    expires = issued + hours * 3600
    token = confirm_token(key, list_id(settings.site.url), subscriber_id, issued, expires)
    return f"{settings.site.url}confirm?token={token}", datetime.fromtimestamp(expires, UTC)


def confirmation_message(settings: Settings, subscriber: Subscriber, link: str, expires: datetime,
                         now: datetime) -> Outgoing:
    """The confirmation email: plain text from the confirm-email.txt.j2 template, UTF-8 quoted-printable.
    The headers are written and folded as the digest's (deliver/message.py): the standard library's
    policy cannot fold a long unbroken name under 998 octets, nor take a UTF-8 local part."""
    site = settings.site
    local = expires.astimezone(site.tz)
    text = render(settings.paths.templates, EMAIL_TEMPLATE, site=site, link=link, address=subscriber.address,
                  hours=round((expires - now) / timedelta(hours=1)),
                  expires=local.strftime("%-d %B %Y, %H:%M ") + (local.tzname() or ""))
    address = sendable(subscriber.address)
    host = list_id(site.url).removeprefix("digest.")
    head = [header_line("Subject", f"Confirm your subscription to {site.title}"),
            mailbox_line("From", *parseaddr(settings.email.sender))]
    if settings.email.reply_to:
        head.append(mailbox_line("Reply-To", *parseaddr(settings.email.reply_to)))
    head += [mailbox_line("To", subscriber.name, address), f"Date: {format_datetime(now.astimezone(UTC))}{CRLF}",
             f"Message-ID: <confirm.{subscriber.id}.{int(now.timestamp())}@{host}>{CRLF}",
             f"Auto-Submitted: auto-generated{CRLF}"]
    body = EmailMessage(policy=SMTP)  # MIME-Version, Content-Type, the encoded text
    body.set_content(text, charset="utf-8", cte="quoted-printable")
    data = "".join(head).encode("utf-8") + body.as_bytes()
    sign = signer(settings.email.dkim)
    if sign:
        data = sign(data)
    sender = sendable(parseaddr(one_line(settings.email.sender))[1])
    return Outgoing(OUTBOX_FOLDER, subscriber.id, sender, address, data)


def send_confirmation(settings: Settings, subscriber: Subscriber, link: str, expires: datetime,
                      now: datetime) -> None:
    """Build and send one confirmation email through the configured transport. Runs after the answer
    page went out (a background task), so it never changes what the reader sees; a failure is logged."""
    _send_one(settings, "confirmation", subscriber.id,
              lambda: confirmation_message(settings, subscriber, link, expires, now))


def send_welcome(settings: Settings, subscriber: Subscriber, key: bytes, now: datetime) -> None:
    """The welcome email of a reader who just confirmed, through the same transport as the confirmation
    email; after the answer page went out. A failure is one log line: the confirmation stands."""
    _send_one(settings, "welcome", subscriber.id, lambda: welcome_message(settings, subscriber, key, now))


def _send_one(settings: Settings, what: str, subscriber_id: str, build: Callable[[], Outgoing]) -> None:
    try:
        message = build()
        transport = open_transport(settings)
        try:
            transport.send(message)
        finally:
            transport.close()
    except (SendFailure, PublisherError, OSError, ValueError) as e:
        log.warning("%s email for subscriber %s not sent: %s", what, subscriber_id, e)
        return
    log.info("%s email sent for subscriber %s", what, subscriber_id)
