"""Adding one article to a large archive: the related-reading index is not written again for a few
articles (they are folded in again each run), and the article pages' memo keys see every input."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from publisher.config import load_settings
from publisher.enrich import reading
from publisher.models import Entry, Identity
from publisher.outputs import pages
from publisher.outputs.tags import TagIndex
from publisher.pipeline import Archive, Loaded, publish
from tests.conftest import Site

WORDS = ["river", "bridge", "harbour", "market", "garden", "engine", "orchestra", "glacier", "library", "vineyard",
         "railway", "lighthouse", "festival", "meadow", "quarry", "canal"]


def write_many(site: Site, count: int) -> None:
    """`count` articles, each on a pair of topic words, one day apart."""
    for n in range(count):
        a, b = WORDS[n % len(WORDS)], WORDS[(3 * n + 1) % len(WORDS)]
        site.write(f"a{n:02}.md", f"---\ntitle: Story {n} of the {a}\ndate: 2026-10-{1 + n % 28:02}T{n % 24:02}:00:00Z"
                   f"\n---\nThe {a} and the {b} met again. People of the {a} spoke of the {b}; the {a} stayed.\n")


def stored_index(site: Site) -> tuple[str, bytes]:
    with sqlite3.connect(site.state) as conn:
        hashes, data = conn.execute("SELECT hashes, data FROM related_index").fetchone()
    conn.close()
    return hashes, bytes(data)


def publish_at(site: Site, clock: str) -> None:
    settings = load_settings(site.root / "publisher.toml", site.root)
    report = publish(settings, datetime.fromisoformat(clock))
    assert not [p for p in report.problems if p.severity == "error"], report.problems


def test_one_added_article_leaves_the_stored_index_and_gives_the_same_output(
        make_site: Callable[[str], Site], monkeypatch: pytest.MonkeyPatch) -> None:
    sites: list[Site] = [make_site("folded"), make_site("stored")]
    for site in sites:
        write_many(site, 40)
        publish_at(site, "2026-11-25T12:00:00+00:00")
    before = stored_index(sites[0])
    for unsaved_max, site in zip((reading.UNSAVED_MAX, 0), sites, strict=True):  # the second stores every change
        monkeypatch.setattr(reading, "UNSAVED_MAX", unsaved_max)
        for n, clock in ((40, "2026-11-26T12:00:00+00:00"), (41, "2026-11-27T12:00:00+00:00")):
            site.write(f"a{n:02}.md", f"---\ntitle: New story {n}\ndate: 2026-10-30T0{n - 40}:00:00Z\n---\nThe river"
                       " and the canal met again. People of the river spoke of the canal; the river stayed.\n")
            publish_at(site, clock)
    assert stored_index(sites[0]) == before, "two articles added: the stored index was not written again"
    assert stored_index(sites[1]) != before
    assert sites[0].feed_bytes() == sites[1].feed_bytes(), "the same pages and feeds either way"
    assert "a40/index.html" in sites[0].feed_bytes() and b"Related reading" in sites[0].feed_bytes()["a41/index.html"]


def _archive(tmp_path: Path, entry: Entry, ident: Identity, related: list[str], others: list[Entry]) -> Archive:
    (tmp_path / "publisher.toml").write_text('[site]\ntitle = "T"\nurl = "https://example.com/"\n', encoding="utf-8")
    settings = load_settings(tmp_path / "publisher.toml", tmp_path)
    entries = {e.slug: e for e in [entry, *others]}
    return Archive(settings, None, Loaded(), entries, {entry.slug: ident}, {entry.slug: related})  # type: ignore[arg-type]


def test_page_keys_see_every_field_and_not_the_tzinfo(tmp_path: Path) -> None:
    when = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    entry = Entry("a.md", "a", "A", "Summary", 1, "hash", date=when)
    other = Entry("b.md", "b", "B", "Other", 1, "hash-b")
    ident = Identity("urn:x", when, None, when)
    base = pages.page_inputs(_archive(tmp_path, entry, ident, ["b"], [other]), "a", TagIndex())
    same_instant = when.astimezone(timezone(timedelta(hours=2)))
    moved = _archive(tmp_path, replace(entry, date=same_instant), replace(ident, published=same_instant), ["b"],
                     [other])
    assert pages.page_inputs(moved, "a", TagIndex()) == base, "the same instant, another tzinfo"
    changed: dict[str, Any] = {
        "source": "c.md", "title": "A2", "summary": "S2", "reading_minutes": 2, "content_hash": "h2",
        "date": when + timedelta(seconds=1), "updated": when, "author": "Me", "tags": ("x",), "image": "i.png",
        "draft": True, "references": ("b",), "guid": "g", "link": "https://x.example/", "image_alt": "alt"}
    assert {*changed, "slug"} == {f.name for f in fields(Entry)}, "every field (the slug names the page itself)"
    for name, value in changed.items():
        assert pages.page_inputs(_archive(tmp_path, replace(entry, **{name: value}), ident, ["b"], [other]), "a",
                                 TagIndex()) != base, name
    for new_ident in (replace(ident, id="urn:y"), replace(ident, updated=when), replace(ident, first_seen=same_instant
                                                                                       + timedelta(microseconds=1))):
        assert pages.page_inputs(_archive(tmp_path, entry, new_ident, ["b"], [other]), "a", TagIndex()) != base
    assert pages.page_inputs(_archive(tmp_path, entry, ident, [], [other]), "a", TagIndex()) != base
    retitled = replace(other, title="B2")
    assert pages.page_inputs(_archive(tmp_path, entry, ident, ["b"], [retitled]), "a", TagIndex()) != base
