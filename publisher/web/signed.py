"""Signed values of the web pages, HMAC-SHA256 with the key of the unsubscribe tokens (signing_key).

Each signs a purpose first, so no token can stand in for another kind:
- confirmation link: `<subscriber id>.<issued>.<expires>.<signature>` over ("confirm", list id,
  subscriber id, issued, expires); times are Unix seconds. The unsubscribe token (tokens.py) signs
  (list id, subscriber id) and has two parts, so neither is ever taken for the other.

The subscribe form has no token and sets no cookie: it must work when pasted into any page, and double
opt-in (the signed confirmation link) is what protects the list.

Every reader refuses anything that is not short plain ASCII before comparing signatures
(hmac.compare_digest raises TypeError on non-ASCII text).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

MAX_TOKEN = 400  # characters; real tokens are about 100
_ID = re.compile(r"[0-9a-f]{1,64}")
_NUMBER = re.compile(r"[0-9]{1,12}")


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
