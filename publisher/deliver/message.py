"""One email per reader, built from the digest rendered once: MJML never runs per subscriber, and no
MIME tree is built per subscriber either. The message is assembled once as bytes with the body parts
quoted-printable encoded in pieces around the unsubscribe placeholder; each reader's message is then
those bytes with the To header, Message-ID and unsubscribe URL put in (the pieces join with soft line
breaks, so the result is plain, valid quoted-printable).

multipart/alternative (text/plain first, then text/html), UTF-8, with Date, Message-ID, List-Id,
List-Unsubscribe (an https URL and a mailto) and List-Unsubscribe-Post. Every header value from
articles, settings or names is put on one line and RFC 2047-encoded, so nothing can add a header.
"""

from __future__ import annotations

import hashlib
import html as htmllib
from datetime import datetime
from email.header import Header
from email.quoprimime import body_encode
from email.utils import format_datetime, formataddr, parseaddr

from publisher.config import Settings
from publisher.deliver.tokens import list_id
from publisher.models import RenderedDigest
from publisher.render.digest import UNSUBSCRIBE

CRLF = "\r\n"
SOFT_BREAK = "=" + CRLF


def one_line(value: str) -> str:
    """A header value on one line: CR, LF and other control characters become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def _header(name: str, value: str) -> str:
    """`Name: value` folded and RFC 2047-encoded when it is not plain ASCII."""
    encoded = Header(one_line(value), "utf-8", header_name=name).encode(linesep=CRLF)
    return f"{name}: {encoded}{CRLF}"


def _address(name: str, address: str) -> str:
    return formataddr((one_line(name), one_line(address)), charset="utf-8")


def subject_line(rendered: RenderedDigest, settings: Settings) -> str:
    digest = rendered.digest
    first = digest.articles[0].entry.title if digest.articles else ""
    text = settings.email.subject.format(site=settings.site.title, title=first, count=len(digest.articles),
                                         date=digest.created.astimezone(settings.site.tz).strftime("%-d %B %Y"))
    return one_line(text)


def _qp_pieces(text: str) -> list[str]:
    """Quoted-printable of the text, in pieces split where the unsubscribe URL goes."""
    return [body_encode(piece.replace("\r\n", "\n"), maxlinelen=76, eol=CRLF) for piece in text.split(UNSUBSCRIBE)]


class MessageTemplate:
    """A digest's message, built once; `render` makes one reader's bytes."""

    def __init__(self, settings: Settings, digest_id: str, subject: str, html: str, text: str, now: datetime) -> None:
        self.host = list_id(settings.site.url).removeprefix("digest.")
        self.digest_id = digest_id
        self.sender = parseaddr(one_line(settings.email.sender))[1]
        boundary = "=_publisher_" + hashlib.sha256(f"{digest_id}\n{html}\n{text}".encode()).hexdigest()[:24]
        headers = [_header("Subject", subject), f"From: {_address(*parseaddr(settings.email.sender))}{CRLF}"]
        if settings.email.reply_to:
            headers.append(f"Reply-To: {_address(*parseaddr(settings.email.reply_to))}{CRLF}")
        headers += [f"Date: {format_datetime(now)}{CRLF}", _header("List-Id", f"{settings.site.title} "
                                                                             f"<{list_id(settings.site.url)}>")]
        self.head = "".join(headers)
        self.mime = (f"List-Unsubscribe-Post: List-Unsubscribe=One-Click{CRLF}MIME-Version: 1.0{CRLF}"
                     f'Content-Type: multipart/alternative; boundary="{boundary}"{CRLF}{CRLF}')
        part = "--{b}" + CRLF + 'Content-Type: text/{kind}; charset="utf-8"' + CRLF + \
            "Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF
        self.text_head = part.format(b=boundary, kind="plain")
        self.html_head = CRLF + part.format(b=boundary, kind="html")
        self.tail = f"{CRLF}--{boundary}--{CRLF}"
        self.text_pieces = _qp_pieces(text)
        self.html_pieces = _qp_pieces(html)

    def message_id(self, subscriber_id: str) -> str:
        """Deterministic: the same digest and subscriber always give the same Message-ID."""
        return f"<{self.digest_id}.{subscriber_id}@{self.host}>"

    @staticmethod
    def _fill(pieces: list[str], url: str) -> str:
        encoded_url = body_encode(url, maxlinelen=76, eol=CRLF)
        return (SOFT_BREAK + encoded_url + SOFT_BREAK).join(pieces)

    def render(self, *, subscriber_id: str, name: str, address: str, unsubscribe_url: str) -> bytes:
        """One reader's message, CRLF line ends."""
        host = self.host
        per_reader = (f"To: {_address(name, address)}{CRLF}Message-ID: {self.message_id(subscriber_id)}{CRLF}"
                      f"List-Unsubscribe: <{one_line(unsubscribe_url)}>,{CRLF} "
                      f"<mailto:unsubscribe@{host}?subject=unsubscribe%20{subscriber_id}>{CRLF}")
        body = (self.text_head + self._fill(self.text_pieces, unsubscribe_url) + self.html_head
                + self._fill(self.html_pieces, htmllib.escape(unsubscribe_url)) + self.tail)
        return (self.head + per_reader + self.mime + body).encode("utf-8")
