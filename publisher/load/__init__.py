"""Load: one reader per source format, picked by file extension."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from publisher.load import markdown, text
from publisher.load.source import check_size, decode, scan
from publisher.models import Document, Problem, SourceFile

Reader = Callable[[str, str, ZoneInfo, list[Problem]], Document]
READERS: dict[str, Reader] = {".txt": text.parse, ".md": markdown.parse, ".markdown": markdown.parse}
EXTENSIONS = frozenset(READERS)

__all__ = ["EXTENSIONS", "READERS", "read", "scan"]


def read(source: SourceFile, tz: ZoneInfo) -> Document:
    """Read and parse one file. Raises ArticleError naming the file (and line) when it is unusable."""
    check_size(source.rel, source.size)
    body, warnings = decode(source.rel, source.path.read_bytes())
    reader = READERS[source.path.suffix.lower()]
    return reader(source.rel, body, tz, warnings)
