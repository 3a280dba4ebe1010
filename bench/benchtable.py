"""What the benchmarks share: the table of figures with targets, and a list-of-numbers argument."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    metric: str
    value: str
    target: str
    ok: bool | None  # None: no target for this figure


def print_table(table: Sequence[Row]) -> None:
    header = Row("figure", "measured", "target", None)
    widths = [max(len(getattr(r, name)) for r in [header, *table]) for name in ("metric", "value", "target")]
    for r in [header, *table]:
        verdict = "" if r.ok is None else ("ok" if r.ok else "MISSED")
        if r is header:
            verdict = "verdict"
        print(f"{r.metric:<{widths[0]}}  {r.value:>{widths[1]}}  {r.target:<{widths[2]}}  {verdict}".rstrip())


def number_list(text: str) -> list[int]:
    """'2225,22250' -> [2225, 22250] (for argparse)."""
    try:
        numbers = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from e
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError("numbers must be 1 or more")
    return numbers
