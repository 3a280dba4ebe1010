"""Settings still pointing at this machine or at the documentation's example domains, in one place.

`check` and `send` print `warnings(settings)` (one line each; the exit code does not change) while
site.url or the sender is `localhost`, a loopback address or an example domain (RFC 2606:
example.com, .org, .net and the .example, .test, .invalid and .localhost names). SMTP delivery calls
`refuse_local_links` first: a digest whose links point at this machine is not mailed to anybody who
could receive it. Recipients at reserved domains (example.org, ...) have no real mailbox and are
allowed, so a site tried out entirely on 127.0.0.1 still works; the outbox transport is always allowed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from email.utils import parseaddr
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from publisher.errors import ConfigError
from publisher.plural import count

if TYPE_CHECKING:
    from publisher.config import Settings

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
RESERVED_TLDS = ("example", "test", "invalid", "localhost")  # RFC 2606 / RFC 6761
URL_HINT = "set site.url in publisher.toml to the address readers open, e.g. https://news.yoursite.org/"
SENDER_HINT = "set email.from in publisher.toml, e.g. from = \"My News <news@yoursite.org>\""


def _name(host: str) -> str:
    """A host as compared: no brackets, an IPv6 literal's 'IPv6:' tag and trailing dot removed, lower case."""
    name = host.strip().strip("[]").lower().rstrip(".")
    return name.removeprefix("ipv6:")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(_name(host))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """A loopback name or address: localhost (and *.localhost), 127.0.0.0/8, ::1 (not 0.0.0.0, which
    answers every interface)."""
    name = _name(host)
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        return True
    address = _address(name)
    return address is not None and address.is_loopback


def is_local(host: str) -> bool:
    """A name or address of this machine: a loopback one, or 0.0.0.0 / :: (every interface)."""
    address = _address(host)
    return is_loopback(host) or (address is not None and address.is_unspecified)


def is_example(host: str) -> bool:
    """A domain reserved for documentation and tests (it never has real readers or mailboxes)."""
    name = _name(host)
    return (any(name == d or name.endswith("." + d) for d in EXAMPLE_DOMAINS)
            or name.rsplit(".", 1)[-1] in RESERVED_TLDS)


def url_host(url: str) -> str:
    return urlsplit(url).hostname or ""


def mail_domain(mailbox: str) -> str:
    """The domain of a mailbox ('Name <a@b.org>' or 'a@b.org'); empty when there is none."""
    address = parseaddr(mailbox)[1] or mailbox
    return address.rpartition("@")[2] if "@" in address else ""


def _why(host: str, local: str) -> str | None:
    if is_local(host):
        return local
    if is_example(host):
        return f"is at {_name(host)}, a documentation example domain (RFC 2606), not yours"
    return None


def warnings(settings: Settings) -> list[str]:
    """One line per setting that still names this machine or an example domain."""
    lines = []
    if why := _why(url_host(settings.site.url), "points to this machine: nobody else can open its links"):
        lines.append(f"site.url {settings.site.url!r} {why}; {URL_HINT}")
    if why := _why(mail_domain(settings.email.sender), "is an address of this machine"):
        lines.append(f"the sender {settings.email.sender!r} (email.from; by default noreply@ the site.url host) "
                     f"{why}: mail from it is refused or lands in spam; {SENDER_HINT}")
    return lines


def refuse_local_links(settings: Settings, recipients: Iterable[str]) -> None:
    """ConfigError (exit 2) when SMTP would mail a digest whose links point at this machine to a reader with
    a real mailbox (any recipient outside the reserved example domains)."""
    if settings.email.transport != "smtp" or not is_local(url_host(settings.site.url)):
        return
    real = sum(not is_example(mail_domain(r)) for r in recipients)
    if not real:
        return
    where = settings.source or "built-in defaults"
    readers = count(real, "subscriber")
    raise ConfigError(f"{where}: site.url = {settings.site.url!r} points to this machine: {readers} could not "
                      f"open the digest's links or unsubscribe, so nothing was sent by SMTP",
                      f"{URL_HINT} (the outbox transport, for trying things, accepts any site.url)")
