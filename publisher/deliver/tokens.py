"""Signed unsubscribe tokens: HMAC-SHA256 over the list and the subscriber id.

The key comes from PUBLISHER_SECRET, else `email.secret`, else a random key made once and kept in
the state database. Processes that make it at the same moment (two `publisher serve` starting on an
empty PostgreSQL state) end with one key: each inserts its own only where none is, and then uses the
one that is there. A token of one subscriber says nothing about another's: without the key no token
can be made, and each signs its own id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError

from publisher.config import Settings
from publisher.errors import StateError
from publisher.state.dialect import savepoint
from publisher.state.schema import meta
from publisher.store import Store

ENV = "PUBLISHER_SECRET"
KEY = "secret"  # the row of the meta table holding the made key


def signing_key(settings: Settings, store: Store) -> bytes:
    """The HMAC key (never logged)."""
    configured = os.environ.get(ENV) or settings.email.secret
    if configured:
        return configured.encode("utf-8")
    stored = store.meta_get(KEY)
    if stored is None:
        stored = _make_key(store)
    return stored.encode("ascii")


def _make_key(store: Store) -> str:
    """Insert a new random key where none is (a savepoint: a key another process inserted meanwhile is a
    unique violation that undoes this insert alone), then read back the one that is there."""
    try:
        with savepoint(store.conn):
            store.conn.execute(meta.insert().values(key=KEY, value=secrets.token_hex(32)))
    except IntegrityError:
        pass
    stored = store.meta_get(KEY)  # inserted here, or by the process whose insert made ours fail
    if stored is None:
        raise StateError("the signing key was removed from the state database while it was being made",
                         "try again")
    return stored


def _signature(key: bytes, list_id: str, subscriber_id: str) -> str:
    digest = hmac.new(key, f"{list_id}\n{subscriber_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_token(key: bytes, list_id: str, subscriber_id: str) -> str:
    return f"{subscriber_id}.{_signature(key, list_id, subscriber_id)}"


def verify_token(key: bytes, list_id: str, token: str) -> str | None:
    """The subscriber id a genuine token names, else None."""
    subscriber_id, _, signature = token.partition(".")
    if not subscriber_id or not signature or not token.isascii():
        return None
    expected = _signature(key, list_id, subscriber_id)
    return subscriber_id if hmac.compare_digest(expected, signature) else None


def ascii_domain(domain: str) -> str:
    """The IDNA (punycode) form of a domain name (UTS 46 mapping, as email-validator does); the name
    as it is when it is ASCII already or no valid IDN."""
    if domain.isascii():
        return domain
    import idna  # a dependency of email-validator; only for non-ASCII names

    try:
        return str(idna.encode(domain, uts46=True).decode("ascii"))
    except idna.IDNAError:
        return domain


def list_id(site_url: str) -> str:
    """The List-Id of the digest (RFC 2919, a dot-atom): digest.<host of site.url>, the host in IDNA
    form; an IPv6 host, which has no dot-atom form, becomes digest.ip6-<its 8 groups>.localhost (the
    namespace RFC 2919 keeps for lists without a domain). The host of an unparseable URL is localhost."""
    try:
        host = urlsplit(site_url).hostname or "localhost"
    except ValueError:
        host = "localhost"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"digest.{ascii_domain(host)}"
    if address.version == 4:
        return f"digest.{address}"
    plain = ipaddress.IPv6Address(int(address))  # without a zone id
    return f"digest.ip6-{plain.exploded.replace(':', '-')}.localhost"


def unsubscribe_url(site_url: str, token: str) -> str:
    return f"{site_url}unsubscribe?token={token}"
