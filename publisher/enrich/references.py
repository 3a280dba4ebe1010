"""The source's own related-reading references ("Also Read:" titles, front matter `related:`).

A reference is a slug or a title; titles match ignoring case, quotes and punctuation. A reference
that matches nothing is kept (reported by `publisher check`), never rendered as a dead link, and
resolves by itself once an article with that title is published.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from publisher.models import Entry

NOT_WORD = re.compile(r"[\W_]+")


def normalize(title: str) -> str:
    """'Putin’s “War”!' -> 'putins war'."""
    text = unicodedata.normalize("NFKC", title).casefold()
    text = re.sub(r"[’'‘`´]", "", text)
    return " ".join(NOT_WORD.sub(" ", text).split())


def resolve(entries: Sequence[Entry]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """slug -> slugs its references point to (in order), and slug -> references that match nothing.
    The titles are normalized only when some reference is not a slug (on a large archive without
    references, nothing is done per article but looking for them)."""
    citing = [e for e in entries if e.references]
    found: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    if not citing:
        return found, missing
    by_slug = {e.slug: e.slug for e in entries}
    by_title: dict[str, str] | None = None
    for e in citing:
        for ref in e.references:
            target = by_slug.get(ref.strip())
            if target is None:
                by_title = _titles(entries) if by_title is None else by_title
                target = by_title.get(normalize(ref))
            if target is None:
                missing.setdefault(e.slug, []).append(ref)
            elif target != e.slug and target not in found.get(e.slug, []):
                found.setdefault(e.slug, []).append(target)
    return found, missing


def _titles(entries: Sequence[Entry]) -> dict[str, str]:
    """Normalized title -> slug; two articles with the same title: the first by slug."""
    by_title: dict[str, str] = {}
    for e in sorted(entries, key=lambda e: e.slug):
        by_title.setdefault(normalize(e.title), e.slug)
    return by_title
