"""The welcome email a reader gets once they confirm (when `web.welcome` is true): a greeting, the latest
digest's link (else the home page) and the unsubscribe link.

The text is `templates/welcome.txt.j2` and the HTML part `templates/welcome.html.j2` (both overridable). The
message is built by the digest's own code (deliver/message.py MessageTemplate: multipart/alternative, UTF-8
quoted-printable, folded headers, List-Id, List-Unsubscribe and List-Unsubscribe-Post) with the reader's
signed unsubscribe link, DKIM-signed when that is configured, and sent through the configured transport
like the confirmation email.
"""

from __future__ import annotations

import logging
from datetime import datetime

from publisher.config import Settings
from publisher.deliver.dkim import signer
from publisher.deliver.message import MessageTemplate, sendable
from publisher.deliver.subscribers import Subscriber
from publisher.deliver.tokens import list_id, make_token, unsubscribe_url
from publisher.deliver.transport import Outgoing
from publisher.render.digest import UNSUBSCRIBE
from publisher.render.templates import render

log = logging.getLogger(__name__)
TEXT_TEMPLATE = "welcome.txt.j2"
HTML_TEMPLATE = "welcome.html.j2"
OUTBOX_FOLDER = "welcome"  # the outbox transport writes outbox/welcome/<subscriber id>.eml
LATEST = (("digests/latest/index.html", "digests/latest/"), ("digests/latest.html", "digests/latest.html"))


def latest_digest_url(settings: Settings) -> str | None:
    """The public URL of the latest digest in the output folder, or None when no digest was made yet."""
    for path, url in LATEST:
        if (settings.paths.output / path).is_file():
            return settings.site.url + url
    return None


def welcome_context(settings: Settings, name: str) -> dict[str, object]:
    """What the welcome templates are given (the unsubscribe link is a placeholder filled per reader)."""
    latest = latest_digest_url(settings)
    return {"site": settings.site, "reader_name": name, "latest": latest or settings.site.url,
            "has_digest": latest is not None, "unsubscribe": UNSUBSCRIBE}


def welcome_message(settings: Settings, subscriber: Subscriber, key: bytes, now: datetime) -> Outgoing:
    """One reader's welcome email, ready for the transport. TemplateProblem when a template is broken."""
    context = welcome_context(settings, subscriber.name)
    templates = settings.paths.templates
    text = render(templates, TEXT_TEMPLATE, **context)
    html = render(templates, HTML_TEMPLATE, **context)
    # The time in the Message-ID: a reader who leaves and comes back gets a new welcome, not a duplicate.
    message = MessageTemplate(settings, f"welcome.{int(now.timestamp())}", f"Welcome to {settings.site.title}",
                              html, text, now)
    url = unsubscribe_url(settings.site.url, make_token(key, list_id(settings.site.url), subscriber.id))
    data = message.render(subscriber_id=subscriber.id, name=subscriber.name, address=subscriber.address,
                          unsubscribe_url=url)
    sign = signer(settings.email.dkim)
    if sign:
        data = sign(data)
    return Outgoing(OUTBOX_FOLDER, subscriber.id, message.sender, sendable(subscriber.address), data)
