"""Load: one reader per source format, picked by file extension (imported only when needed)."""

from __future__ import annotations

import importlib
import os
from zoneinfo import ZoneInfo

from publisher.load.source import check_size, decode, scan
from publisher.models import Document, SourceFile

READERS = {".txt": "publisher.load.text", ".md": "publisher.load.markdown", ".markdown": "publisher.load.markdown"}
EXTENSIONS = frozenset(READERS)

__all__ = ["EXTENSIONS", "READERS", "read", "scan"]


def read(source: SourceFile, tz: ZoneInfo) -> Document:
    """Read and parse one file. Raises ArticleError naming the file (and line) when it is unusable."""
    check_size(source.rel, source.size)
    with open(source.path, "rb") as handle:
        body, warnings = decode(source.rel, handle.read())
    reader = importlib.import_module(READERS[os.path.splitext(source.path)[1].lower()])
    document: Document = reader.parse(source.rel, body, tz, warnings)
    return document
