"""Per-tag feeds: tags/<tag-slug>/rss.xml, atom.xml, feed.json (being built: makes nothing yet)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.outputs import Made

if TYPE_CHECKING:
    from publisher.pipeline import Archive


def tag_made(archive: Archive, *, record: bool) -> Made:
    return Made()
