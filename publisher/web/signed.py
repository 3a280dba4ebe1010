"""Signed values of the web pages, HMAC-SHA256 with the key of the unsubscribe tokens (signing_key).

Each signs a purpose first, so no token can stand in for another kind:
- confirmation link: `<subscriber id>.<issued>.<expires>.<signature>` over ("confirm", list id,
  subscriber id, issued, expires); times are Unix seconds. The unsubscribe token (tokens.py) signs
  (list id, subscriber id) and has two parts, so neither is ever taken for the other.
- form token: `<issued>.<signature>` over ("csrf", cookie nonce, issued): the hidden field of the
  subscribe form must match the nonce cookie of the same browser and be younger than FORM_MAX_AGE.

Every reader refuses anything that is not short plain ASCII before comparing signatures
(hmac.compare_digest raises TypeError on non-ASCII text).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

MAX_TOKEN = 400  # characters; real tokens are about 100
FORM_MAX_AGE = 86_400  # seconds a subscribe form stays usable
_ID = re.compile(r"[0-9a-f]{1,64}")
_NUMBER = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _sign(key: bytes, *fields: str) -> str:
    digest = hmac.new(key, "\n".join(fields).encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def plain(token: str) -> bool:
    """Short printable ASCII: the only text worth checking a signature on."""
    return 0 < len(token) <= MAX_TOKEN and token.isascii() and token.isprintable()


@dataclass(frozen=True)
class Confirmation:
    subscriber_id: str
    issued: int
    expires: int


def confirm_token(key: bytes, list_id: str, subscriber_id: str, issued: int, expires: int) -> str:
    signature = _sign(key, "confirm", list_id, subscriber_id, str(issued), str(expires))
    return f"{subscriber_id}.{issued}.{expires}.{signature}"


def read_confirm_token(key: bytes, list_id: str, token: str) -> Confirmation | None:
    """What a genuine confirmation token says (expired or not), else None."""
    if not plain(token):
        return None
    parts = token.split(".")
    if len(parts) != 4:
        return None
    subscriber_id, issued, expires, signature = parts
    if not (_ID.fullmatch(subscriber_id) and _NUMBER.fullmatch(issued) and _NUMBER.fullmatch(expires)):
        return None
    expected = _sign(key, "confirm", list_id, subscriber_id, issued, expires)
    if not hmac.compare_digest(expected, signature):
        return None
    return Confirmation(subscriber_id, int(issued), int(expires))


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def good_nonce(nonce: str | None) -> bool:
    return bool(nonce and _NONCE.fullmatch(nonce))


def form_token(key: bytes, nonce: str, issued: int) -> str:
    return f"{issued}.{_sign(key, 'csrf', nonce, str(issued))}"


def form_token_ok(key: bytes, nonce: str | None, token: str, now: int) -> bool:
    """The form token belongs to this browser's nonce and is not too old."""
    if not (nonce and good_nonce(nonce) and plain(token)):
        return False
    issued, _, signature = token.partition(".")
    if not _NUMBER.fullmatch(issued) or not -60 <= now - int(issued) <= FORM_MAX_AGE:
        return False
    return hmac.compare_digest(_sign(key, "csrf", nonce, issued), signature)
