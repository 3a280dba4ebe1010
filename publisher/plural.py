"""Counts in words, for every message the user reads: '1 article', '2 articles', '2 tries'."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 article', '2 articles', '0 articles' (or the plural given: count(2, 'try', 'tries'))."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"
