"""One email per reader, built from the digest rendered once (MJML never runs per subscriber).

multipart/alternative (text/plain first, then text/html), UTF-8, with the headers bulk mail needs:
Date, Message-ID, List-Id, List-Unsubscribe (an https URL and a mailto) and List-Unsubscribe-Post.
Every value taken from articles or names is folded and encoded by the email package; CR and LF are
removed first, so nothing in a title can add a header.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from urllib.parse import urlsplit

from publisher.config import Settings
from publisher.models import RenderedDigest
from publisher.render.digest import for_reader


def one_line(value: str) -> str:
    """A header value on one line: CR, LF and other control characters become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def subject(rendered: RenderedDigest, settings: Settings) -> str:
    digest = rendered.digest
    first = digest.articles[0].entry.title if digest.articles else ""
    text = settings.email.subject.format(site=settings.site.title, title=first, count=len(digest.articles),
                                         date=digest.created.astimezone(settings.site.tz).strftime("%-d %B %Y"))
    return one_line(text)


def build_message(rendered: RenderedDigest, settings: Settings, *, name: str, address: str,
                  unsubscribe_url: str, message_id: str, now: datetime) -> EmailMessage:
    """The message for one reader."""
    host = urlsplit(settings.site.url).hostname or "localhost"
    html, text = for_reader(rendered, unsubscribe_url)
    message = EmailMessage(policy=SMTP)
    message["Subject"] = subject(rendered, settings)
    message["From"] = one_line(settings.email.sender)
    if settings.email.reply_to:
        message["Reply-To"] = one_line(settings.email.reply_to)
    message["To"] = formataddr((one_line(name), address))
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message["List-Id"] = f"{one_line(settings.site.title)} <digest.{host}>"
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>, <mailto:unsubscribe@{host}?subject=unsubscribe>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    seed = f"{message_id}\n{text}\n{html}".encode()
    message.set_boundary(f"=_publisher_{hashlib.sha256(seed).hexdigest()[:24]}")  # same input, same bytes
    return message
