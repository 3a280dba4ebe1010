"""The value checks of the settings schema (publisher.config.SCHEMA).

Each check takes a value already of the field's type and returns a problem description ("must be 1 or
more"), or None when the value is fine; config.py names the file and key. The checks of values that end
up in email headers (site.title, site.url, email.from, email.reply_to, email.subject) are here too, in
one place: no CR, LF, tab, U+2028, U+2029, U+0085 or other control character, and site.url an ASCII URI
with a valid host, short enough for the List-Unsubscribe header built on it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Check = Callable[[Any], str | None]  # returns a problem description, or None when the value is fine
FEED_FORMATS = ("rss", "atom", "json")
HOST = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?")
URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")  # RFC 3986: unreserved, reserved and '%'
MAX_URL = 800  # octets: the unsubscribe link built on it must fit in one header line (998)


# values that end up in email headers


def header_text(value: str) -> str | None:
    """A value that ends up in an email header: no CR, LF, tab, U+2028, U+2029, U+0085 or other control
    character (each would break the header or add one)."""
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")), None)
    return None if bad is None else f"holds the control character {bad!r}; email headers cannot carry it"


def http_url(value: str) -> str | None:
    """An absolute http(s) URL."""
    try:
        parts = urlsplit(value)
    except ValueError as e:  # e.g. "Invalid IPv6 URL"
        return f"is not a valid URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an absolute http(s) URL such as https://example.com/"
    return None


def site_url(value: str) -> str | None:
    """site.url ends up in headers (List-Unsubscribe, List-Id, Message-ID): an ASCII URI, a valid host."""
    if problem := http_url(value):
        return problem
    if not value.isascii() and value.isprintable() and " " not in value:
        return f"must be ASCII (a URI, not an IRI): {_ascii_hint(value)}"
    if not URL_CHARS.fullmatch(value):
        bad = next(c for c in value if not URL_CHARS.fullmatch(c))
        return f"holds {bad!r}, which a URL may not (percent-encode it, or remove it)"
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is no number in 0-65535
    except ValueError:
        return "has an invalid port"
    host = parts.hostname or ""
    if "[" in parts.netloc:
        return None if _ipv6(host) else f"has an invalid IPv6 host {host!r}"
    if not HOST.fullmatch(host) or len(host) > 253:
        return f"has an invalid host {host!r} (letters, digits, '-' and '.' only)"
    return None if len(value) <= MAX_URL else f"is longer than {MAX_URL} characters"


def _ascii_hint(value: str) -> str:
    """The URL with its host in IDNA form and the rest percent-encoded, for the error's suggestion."""
    import idna

    parts = urlsplit(value)
    try:
        host = idna.encode(parts.hostname or "", uts46=True).decode("ascii")
    except idna.IDNAError:
        return "use an ASCII URL"
    netloc = host + (f":{parts.port}" if parts.port else "")
    safe = "/:@!$&'()*+,;=%"
    return f"use {urlunsplit((parts.scheme, netloc, quote(parts.path, safe), quote(parts.query, safe), ''))!r}"


def _ipv6(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def mailbox(value: str) -> str | None:
    """One mailbox ('Name <local@domain>' or 'local@domain') with an ASCII local part (the domain may be
    an IDN: it is sent in IDNA form), fit for the From and Reply-To headers. Empty: not set."""
    if not value:
        return None
    if problem := header_text(value):
        return problem
    from email.utils import getaddresses  # the email package only when an address is set

    example = "must be one email address such as 'Example News <news@example.com>'"
    found = getaddresses([value])
    if len(found) != 1 or not found[0][1] or "@" not in found[0][1]:
        return example
    from email_validator import EmailNotValidError, validate_email  # only when an address is set

    try:
        validate_email(found[0][1], check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        return f"{example}: {e}"
    return None


def subject(value: str) -> str | None:
    """The subject template: header text with only the known placeholders."""
    if problem := header_text(value):
        return problem
    try:
        value.format(site="", title="", count=0, more=0, date="")
    except (KeyError, IndexError, ValueError) as e:
        return f"has an unknown placeholder {e}; use {{site}}, {{title}}, {{count}}, {{more}} or {{date}}"
    return None


# other values


def timezone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not a known IANA timezone (for example Europe/Berlin or UTC)"
    return None


def language(value: str) -> str | None:
    ok = re.fullmatch(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*", value)
    return None if ok else "must be a language tag such as en or en-GB"


def permalink(value: str) -> str | None:
    return None if "{slug}" in value else "must contain {slug}, for example {slug}/"


def feed_formats(value: list[Any]) -> str | None:
    bad = [v for v in value if v not in FEED_FORMATS]
    if bad or not value:
        return f"must list some of {', '.join(FEED_FORMATS)}"
    return None


def stylesheet_urls(value: list[Any]) -> str | None:
    bad = [v for v in value if not isinstance(v, str) or http_url(v)]
    return f"must list https URLs of stylesheets, not {bad[0]!r}" if bad else None


def hub_urls(value: list[Any]) -> str | None:
    bad = [v for v in value if not isinstance(v, str) or http_url(v)]
    if bad:
        return f"must list http(s) URLs of WebSub hubs such as https://hub.example/, not {bad[0]!r}"
    if any("@" in urlsplit(v).netloc for v in value):  # the feeds publish them
        return "must not carry a user name or password: every feed shows its hubs' URLs"
    return None


def one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of: {', '.join(choices)}"
    return check


def positive(value: int) -> str | None:
    return None if value >= 1 else "must be 1 or more"


def non_negative(value: float) -> str | None:
    """For int and float fields alike."""
    return None if value >= 0 else "must be 0 or more"


def fraction(value: float) -> str | None:
    return None if 0 <= value <= 1 else "must be between 0 and 1"
