"""The small interface every transport implements, and how a send can fail.

A transport takes one finished message (bytes) at a time. It raises TemporaryFailure (try again
later: SMTP 4xx), PermanentFailure (this recipient will never take it: SMTP 5xx) or
ConnectionFailure (the server cannot be reached or dropped us); anything it returns from is
delivered (accepted by the server, or on disk). A PublisherError means no message can go with these
settings (the run stops); any other exception fails that one message: the sender closes the
transport (the next message starts a new session) and goes on. Messages never contain secrets;
errors never contain the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message ready to go."""

    digest_id: str
    subscriber_id: str
    sender: str  # envelope sender (bare address)
    recipient: str  # envelope recipient (bare address)
    data: bytes  # the whole message, CRLF line ends


class SendFailure(Exception):
    """A message was not delivered. `code` is the SMTP reply code when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TemporaryFailure(SendFailure):
    """Try again later (SMTP 4xx, e.g. 421, 451, 452)."""


class PermanentFailure(SendFailure):
    """The server refused this recipient or message for good (SMTP 5xx, e.g. 550)."""


class ConnectionFailure(SendFailure):
    """No connection, a dropped connection or no answer in time."""


class Transport(Protocol):
    def send(self, message: Outgoing) -> None: ...

    def close(self) -> None: ...
