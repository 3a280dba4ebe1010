"""One email per reader, built from the digest rendered once: MJML never runs per subscriber, and no
MIME tree is built per subscriber either. The message is assembled once as bytes with the body parts
quoted-printable encoded in pieces around the unsubscribe and greeting placeholders; each reader's
message is then those bytes with the To header, Message-ID, unsubscribe URL and greeting ("Hi Ana,") put
in (the pieces join with soft line breaks, so the result is plain, valid quoted-printable).

multipart/alternative (text/plain first, then text/html), UTF-8, with Date, Message-ID, List-Id,
List-Unsubscribe (an https URL and a mailto) and List-Unsubscribe-Post.

The bodies are quoted-printable of their UTF-8 bytes, encoded the way the standard library's
`email.charset.Charset.body_encode` does it (the bytes as Latin-1 code points through
`email.quoprimime.body_encode`), with lines of at most 75 characters so that the soft break that
joins a piece to the reader's URL keeps every line within RFC 2045's 76. Every header value from
articles, settings or names is put on one line first (control characters, CR, LF, U+2028... become
spaces), then folded by `email.header.Header` (RFC 2047 words where it is not plain ASCII), so no line
exceeds 78 characters but for one unbreakable address, and nothing can add a header. A reader whose
address has a non-ASCII local part (SMTPUTF8) gets it as UTF-8 in the To header (RFC 6532).
"""

from __future__ import annotations

import hashlib
import html as htmllib
import re
from datetime import datetime
from email.charset import Charset
from email.header import Header
from email.quoprimime import body_encode
from email.utils import format_datetime, parseaddr

from publisher.config import Settings
from publisher.deliver.tokens import ascii_domain, list_id
from publisher.models import RenderedDigest
from publisher.render.digest import GREETING, UNSUBSCRIBE, greeting

CRLF = "\r\n"
SOFT_BREAK = "=" + CRLF
QP_LINE = 75  # RFC 2045 allows 76 per encoded line; one is kept for the soft break between pieces
FOLD = 78  # RFC 5322 section 2.1.1: lines SHOULD be at most 78 characters
LONGEST_WORD = 60  # an ASCII value with a longer word cannot be folded at spaces: it is encoded instead
UTF8 = Charset("utf-8")
SPECIALS = re.compile(r'[][\\()<>@,:;".]')  # as email.utils.specialsre
OPTIONAL_MORE = re.compile(r"\[([^\[\]]*\{more\}[^\[\]]*)\]")  # "[ and {more} more]"
PLACEHOLDERS = re.compile(f"({re.escape(UNSUBSCRIBE)}|{re.escape(GREETING)})")


def one_line(value: str) -> str:
    """A header value on one line: CR, LF and other control characters (U+2028, U+0085, lone
    surrogates...) become spaces, runs of spaces one. A printable string (the usual case) has no character
    to replace, and the only whitespace str.split() sees in it is the ASCII space: it skips the per-character
    pass."""
    if value.isprintable():
        return " ".join(value.split())
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def quoted_printable(text: str) -> str:
    """Quoted-printable of the UTF-8 bytes of `text`, CRLF line ends, at most QP_LINE characters a line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    octets = text.encode("utf-8", errors="replace").decode("latin-1")  # as email.charset.Charset.body_encode
    return body_encode(octets, maxlinelen=QP_LINE, eol=CRLF)


def _plain_ascii(text: str) -> bool:
    """Text that can go in a header as it is and still be folded at its spaces."""
    return text.isascii() and "=?" not in text and all(len(word) <= LONGEST_WORD for word in text.split(" "))


def header_line(name: str, value: str) -> str:
    """`Name: value` CRLF, on one logical line, folded; RFC 2047 words where it is not plain ASCII."""
    text = one_line(value)
    charset = "us-ascii" if _plain_ascii(text) else "utf-8"
    folded = Header(text, charset, header_name=name).encode(splitchars=" ", linesep=CRLF)  # at spaces only
    return f"{name}: {folded}{CRLF}"


def sendable(address: str) -> str:
    """The address with its domain in IDNA (ASCII) form; the local part as it is (ASCII, or UTF-8 for
    SMTPUTF8). An address already in that form, or whose domain is no valid IDN, comes back as it is."""
    address = one_line(address)
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    return f"{local}@{ascii_domain(domain)}"


def _phrase(display: str) -> str:
    """A display name as `email.utils.formataddr` writes it: quoted when it holds specials, one RFC 2047
    word when it is not ASCII."""
    if not display.isascii():
        return UTF8.header_encode(display)
    if not SPECIALS.search(display):
        return display
    escaped = display.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _named(name: str, display: str, angle: str) -> str:
    """`Name: display <...>` CRLF: on one line when it fits in 78 characters, else the display name as
    folded RFC 2047 words and the angle part on a line of its own."""
    if not display:
        return f"{name}: {angle}{CRLF}"
    if angle.isascii() and "=?" not in display:
        line = f"{name}: {_phrase(display)} {angle}"
        if len(line) <= FOLD:
            return line + CRLF
    words = Header(display, "utf-8", header_name=name).encode(linesep=CRLF)
    return f"{name}: {words}{CRLF} {angle}{CRLF}"


def mailbox_line(name: str, display: str, address: str) -> str:
    """`Name: display <address>` CRLF, folded (see `_named`); an address cannot be broken, but it is at
    most 254 octets, so no line comes near 998."""
    display, address = one_line(display), sendable(address)
    return _named(name, display, f"<{address}>") if display else f"{name}: {address}{CRLF}"


def subject_text(template: str, *, site: str, title: str, count: int, date: str) -> str:
    """The subject from its template: {site}, {title} (the lead article), {count} articles, {more} = count - 1,
    {date}. A part in [brackets] that holds {more} is left out when there is no other article
    ("{site}: {title}[ and {more} more]"); other brackets stay as they are."""
    more = max(count - 1, 0)
    template = OPTIONAL_MORE.sub(lambda m: m.group(1) if more else "", template)
    return template.format(site=site, title=title, count=count, more=more, date=date)


def subject_line(rendered: RenderedDigest, settings: Settings) -> str:
    digest = rendered.digest
    lead = digest.articles[0].entry.title if digest.articles else ""
    text = subject_text(settings.email.subject, site=settings.site.title, title=lead, count=len(digest.articles),
                        date=digest.created.astimezone(settings.site.tz).strftime("%-d %B %Y"))
    return one_line(text)


def _qp_pieces(text: str) -> tuple[list[bytes], list[str]]:
    """Quoted-printable of the text (ASCII bytes), in pieces split where a placeholder goes (the unsubscribe
    URL, the greeting), and the placeholders in the order they come."""
    parts = PLACEHOLDERS.split(text)
    return [quoted_printable(piece).encode("ascii") for piece in parts[::2]], parts[1::2]


def _joint(value: str) -> bytes:
    """What joins the quoted-printable pieces around a placeholder: the value, encoded, between soft line
    breaks."""
    return (SOFT_BREAK + quoted_printable(value) + SOFT_BREAK).encode("ascii")


def _joined(pieces: list[bytes], slots: list[str], joints: dict[str, bytes]) -> bytes:
    """The pieces with each placeholder's joint between them (the common digest has one of each)."""
    out = [pieces[0]]
    for slot, piece in zip(slots, pieces[1:], strict=True):
        out += (joints[slot], piece)
    return b"".join(out)


class MessageTemplate:
    """A digest's message, built once; `render` makes one reader's bytes."""

    def __init__(self, settings: Settings, digest_id: str, subject: str, html: str, text: str, now: datetime) -> None:
        identifier = list_id(settings.site.url)
        self.host = identifier.removeprefix("digest.")
        self.digest_id = digest_id
        self.sender = sendable(parseaddr(one_line(settings.email.sender))[1])
        boundary = "=_publisher_" + hashlib.sha256(f"{digest_id}\n{html}\n{text}".encode(errors="replace")
                                                   ).hexdigest()[:24]
        headers = [header_line("Subject", subject), mailbox_line("From", *parseaddr(settings.email.sender))]
        if settings.email.reply_to:
            headers.append(mailbox_line("Reply-To", *parseaddr(settings.email.reply_to)))
        headers += [f"Date: {format_datetime(now)}{CRLF}",
                    _named("List-Id", one_line(settings.site.title), f"<{identifier}>")]
        self.head = "".join(headers).encode("utf-8")
        self.mime = (f"List-Unsubscribe-Post: List-Unsubscribe=One-Click{CRLF}MIME-Version: 1.0{CRLF}"
                     f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}{CRLF}').encode("ascii")
        part = "--{b}" + CRLF + 'Content-Type: text/{kind}; charset="utf-8"' + CRLF + \
            "Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF
        self.text_head = part.format(b=boundary, kind="plain").encode("ascii")
        self.html_head = (CRLF + part.format(b=boundary, kind="html")).encode("ascii")
        self.tail = f"{CRLF}--{boundary}--{CRLF}".encode("ascii")
        self.text_pieces, self.text_slots = _qp_pieces(text)
        self.html_pieces, self.html_slots = _qp_pieces(html)

    def message_id(self, subscriber_id: str) -> str:
        """Deterministic: the same digest and subscriber always give the same Message-ID."""
        return f"<{self.digest_id}.{subscriber_id}@{self.host}>"

    def render(self, *, subscriber_id: str, name: str, address: str, unsubscribe_url: str) -> bytes:
        """One reader's message, CRLF line ends. The headers are ASCII unless the address has a non-ASCII
        local part (then it is UTF-8, to be sent with SMTPUTF8). The parts built once are bytes already:
        a reader costs their own headers, the encoded URL and greeting, joined."""
        host = self.host
        per_reader = (f"{mailbox_line('To', name, address)}Message-ID: {self.message_id(subscriber_id)}{CRLF}"
                      f"List-Unsubscribe: <{one_line(unsubscribe_url)}>,{CRLF} "
                      f"<mailto:unsubscribe@{host}?subject=unsubscribe%20{subscriber_id}>{CRLF}")
        hello = greeting(name)
        text_url, text_hello = _joint(unsubscribe_url), _joint(hello)
        html_url, html_hello = htmllib.escape(unsubscribe_url), htmllib.escape(hello)  # mostly the same strings
        html_joints = {UNSUBSCRIBE: text_url if html_url == unsubscribe_url else _joint(html_url),
                       GREETING: text_hello if html_hello == hello else _joint(html_hello)}
        return b"".join((self.head, per_reader.encode("utf-8", errors="replace"), self.mime, self.text_head,
                         _joined(self.text_pieces, self.text_slots, {UNSUBSCRIBE: text_url, GREETING: text_hello}),
                         self.html_head, _joined(self.html_pieces, self.html_slots, html_joints), self.tail))
