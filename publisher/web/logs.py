"""Access log lines without secrets: the token of a confirmation or unsubscribe link is replaced by
`…` in uvicorn's access log (the token alone would let anyone who reads the log act for the reader)."""

from __future__ import annotations

import logging
import re

TOKEN = re.compile(r"(token=)[^&\s]+")


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(TOKEN.sub(r"\1…", a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log(logger: str = "uvicorn.access") -> None:
    """Add the filter to uvicorn's access logger (once)."""
    target = logging.getLogger(logger)
    if not any(isinstance(f, RedactTokens) for f in target.filters):
        target.addFilter(RedactTokens())
