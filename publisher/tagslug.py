"""Tags as feeds see them: one fold for comparing (`fold`), one slug for the folder of a tag's feeds
(`slugify`), and the small value pages show of a tag that has feeds (`Topic`).

A slug is deterministic for any Unicode text: NFKC, casefold, every run of characters that are not
Unicode letters, digits or combining marks becomes '-', and '-' is stripped from both ends (letters of
every script are kept, as Hugo keeps them: `tags/日本語/`, percent-encoded in URLs). It is never longer
than `MAX_BYTES` of UTF-8 (a file system's name limit is 255 bytes), and is a safe path part: no '/',
no '.', never '.' or '..'. A tag of punctuation or emoji only has the empty slug: it gets no feed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

TAGS_DIR = "tags"  # the output folder's tags/<slug>/ (publisher.outputs.TAG_FEEDS)
MAX_BYTES = 120  # a slug's UTF-8 length at most (cut at a character, then stripped of '-')
KEPT = ("L", "N", "M")  # Unicode categories kept: letters, digits (numbers), combining marks
SEPARATORS = re.compile(r"-{2,}")


def fold(tag: str) -> str:
    """The form tags are compared in: NFKC, casefold, whitespace collapsed ("Café  Au Lait" ->
    "café au lait"); empty for a tag of whitespace only."""
    return " ".join(unicodedata.normalize("NFKC", tag).casefold().split())


def slugify(tag: str) -> str:
    """The folder name of a tag's feeds ('' when the tag has no letter or digit)."""
    text = unicodedata.normalize("NFKC", fold(tag))
    kept = "".join(c if unicodedata.category(c)[0] in KEPT else "-" for c in text)
    slug = SEPARATORS.sub("-", kept).strip("-")
    while len(slug.encode("utf-8")) > MAX_BYTES:
        slug = slug[:-1]
    slug = slug.strip("-")
    return slug if safe_part(slug) else ""


def safe_part(slug: str) -> bool:
    """Whether `slug` is one plain path part (publisher.write.safe_join guards every write anyway)."""
    return bool(slug) and slug not in (".", "..") and not any(c in slug for c in "/\\.\0")


@dataclass(frozen=True)
class Topic:
    """A tag that has feeds: its slug, the name shown (the most used spelling) and its article count."""

    slug: str
    name: str
    count: int

    @property
    def folder(self) -> str:
        """Where its feeds are, below the output folder (and below site.url): tags/<slug>/."""
        return f"{TAGS_DIR}/{self.slug}/"
