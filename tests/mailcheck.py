"""Strict checks of a message's bytes, for every mail test: a lenient `get_content()` replaces bad
bytes silently, so it proves nothing. Here each text part is decoded by its transfer encoding and
then by its declared charset with errors="strict", and lines are checked against RFC 5322's limit."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

MAX_LINE = 998  # octets, without CRLF (RFC 5322 section 2.1.1)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def check_lines(data: bytes) -> None:
    """CRLF line ends only, no line over 998 octets, no NUL."""
    assert b"\x00" not in data, "NUL byte in the message"
    lines = data.split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines), "bare CR or LF in the message"
    too_long = [len(line) for line in lines if len(line) > MAX_LINE]
    assert not too_long, f"lines over {MAX_LINE} octets: {too_long}"


def check_headers_ascii(data: bytes, *, utf8_headers: bool = False) -> None:
    """Header bytes are ASCII (RFC 2047 words for the rest), unless the message is sent with SMTPUTF8."""
    head = data.split(b"\r\n\r\n", 1)[0]
    if utf8_headers:
        head.decode("utf-8")  # strict: RFC 6532 headers are UTF-8
    else:
        head.decode("ascii")  # strict


def strict_text(part: EmailMessage, charset: str = "utf-8") -> str:
    """One text part decoded strictly: its declared charset must be `charset`, and every byte must decode."""
    declared = part.get_content_charset()
    assert declared == charset, f"{part.get_content_type()} declares charset {declared!r}, expected {charset!r}"
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(declared, errors="strict")


def strict_parts(data: bytes, charset: str = "utf-8") -> dict[str, str]:
    """Every text/* part of the message, decoded strictly: {'plain': ..., 'html': ...}. Also checks the
    raw lines and that a quoted-printable or 7bit part holds only ASCII bytes on the wire."""
    check_lines(data)
    message = parse(data)
    found: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_maintype() != "text":
            continue
        assert isinstance(part, EmailMessage)
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).lower()
        if cte in ("quoted-printable", "base64", "7bit"):
            raw = part.get_payload(decode=False)
            assert isinstance(raw, str)
            raw.encode("ascii")  # strict: these encodings put only ASCII on the wire
        found[part.get_content_subtype()] = strict_text(part, charset)
    return found
