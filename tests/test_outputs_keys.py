"""The memo keys of the article pages and the archive feeds, put together from parts made once a run
(`outputs.Derived`), are the very texts the keys were made of before (a state written by an older run is
still understood: nothing is rendered again); a run sorts the articles and indexes the tags once; and a
page or archive document deleted or changed in size is rendered again by the next full run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from publisher.config import Settings, load_settings
from publisher.memo import _ENTRY_DATED, _IDENTITY_DATED, OnDisk, article_key, article_text
from publisher.models import Entry, Identity
from publisher.outputs import Context, Derived, feed_archive, pages, reserved, tags
from publisher.pipeline import Archive, make_outputs, prepare
from publisher.store import Store, open_store
from tests.conftest import CLOCK, Site

NOW = datetime.fromisoformat(CLOCK.replace("Z", "+00:00"))
BERLIN = ZoneInfo("Europe/Berlin")


def _entries() -> Iterator[tuple[Entry, Identity]]:
    """Articles with every kind of value their fields hold: dates with several tzinfo objects or none,
    tags, references, quotes and non-ASCII text."""
    base = Entry("a.md", "a", "Title 'quoted' \"twice\"", "Summary \u00e9 \\ back", 3, "hash")
    ident = Identity("urn:uuid:1", datetime(2026, 11, 20, 9, tzinfo=UTC), None, datetime(2026, 11, 20, 9, tzinfo=UTC))
    yield base, ident
    yield (Entry("b/c.txt", "b-c", "T", "", 0, "h", datetime(2026, 1, 2, 3, tzinfo=BERLIN),
                 datetime(2026, 1, 3, tzinfo=timezone(timedelta(hours=-5))), "Ana", ("x", "Y y"), "/i.png", True,
                 ("a", "b"), "guid", "https://elsewhere.example/p", "alt"),
           Identity("id", datetime(2026, 1, 2, 2, tzinfo=UTC).astimezone(BERLIN), datetime(2026, 2, 1, tzinfo=UTC),
                    datetime(2026, 1, 1, tzinfo=timezone(timedelta(0)))))


@pytest.mark.parametrize(("entry", "ident"), list(_entries()))
def test_article_text_is_the_repr_of_article_key(entry: Entry, ident: Identity) -> None:
    assert article_text(entry, ident) == repr(article_key(entry, ident))[1:-1]


def test_every_field_that_holds_a_datetime_is_one_looked_at() -> None:
    """The fields found to hold a datetime in the sample articles (every date field set in the second) are
    among those `article_text` converts, and those are not more than the date fields."""
    for number, (kind, dated) in enumerate(((Entry, _ENTRY_DATED), (Identity, _IDENTITY_DATED))):
        holding = {n for pair in _entries() for n, f in enumerate(fields(kind))
                   if isinstance(getattr(pair[number], f.name), datetime)}
        assert holding and holding <= set(dated), kind
        assert len(dated) == len(holding), kind  # the second sample sets every one of them


ARTICLE = "---\ntitle: {title}\ndate: 2026-11-{day:02}T09:00:00Z\ntags: [{tags}]\n---\n\n{body}\n"


def _site(site: Site, count: int = 9) -> Settings:
    """A site past feeds.limit (archive documents of 2 articles, month pages) with tags, related reading and
    one article whose related list names an article no longer there."""
    site.configure("[feeds]\nlimit = 2\narchive_page = 2")
    for n in range(count):
        tag_list = ", ".join(t for t, every in (("news", 1), ("C", 2), ("c++", 3)) if n % every == 0)
        site.write(f"post-{n}.md", ARTICLE.format(title=f"Post {n} about rivers", day=n + 1, tags=tag_list,
                                                  body=f"Rivers and lakes, the text of post {n}. " * 5))
    assert site.publish("--no-send").returncode == 0
    return load_settings(site.root / "publisher.toml", site.root)


def _prepared(settings: Settings, store: Store) -> Archive:
    archive = prepare(settings, store, NOW).archive
    first = sorted(archive.entries)[0]
    archive.related[first] = [*archive.related.get(first, []), "no-such-article"]
    return archive


def test_page_inputs_made_from_shared_parts_are_the_old_text(site: Site) -> None:
    settings = _site(site)
    with open_store(settings.paths.state, write=False) as store:
        archive = _prepared(settings, store)
        derived = Derived(archive)
        index = derived.tags()
        assert index.feeds, "some tags have feeds"
        pairs = {slug: repr((slug, entry.title)) for slug, entry in archive.entries.items()}
        for slug, entry in archive.entries.items():
            related = [(s, archive.entries[s].title) for s in archive.related.get(slug, ()) if s in archive.entries]
            shown = [(name, (topic.slug, topic.name, topic.count) if topic else None)
                     for name, topic in index.of_article(entry.tags)] if entry.tags else []
            old = repr((*article_key(entry, archive.identities[slug]), related, shown))
            assert pages.page_inputs(archive, slug, index, derived.texts(), pairs) == old
            assert pages.page_inputs(archive, slug, index) == old


def test_archive_items_made_from_shared_parts_are_the_old_text(site: Site) -> None:
    settings = _site(site)
    with open_store(settings.paths.state, write=False) as store:
        archive = _prepared(settings, store)
        texts = Derived(archive).texts()
        slugs = sorted(archive.entries)
        for chosen in ([], slugs[:1], slugs):
            old = repr([article_key(archive.entries[s], archive.identities[s]) for s in chosen])
            assert feed_archive.items_text(texts, chosen) == old


def test_a_run_sorts_the_articles_and_indexes_the_tags_once(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _site(site)
    calls = {"sorted": 0, "tag_index": 0}
    order, tag_index = Archive.__dict__["_newest_first"].func, tags.tag_index

    def counted_order(self: Archive) -> list[str]:
        calls["sorted"] += 1
        return order(self)  # type: ignore[no-any-return]

    def counted_index(archive: Archive) -> tags.TagIndex:
        calls["tag_index"] += 1
        return tag_index(archive)

    counted = cached_property(counted_order)
    counted.__set_name__(Archive, "_newest_first")
    monkeypatch.setattr(Archive, "_newest_first", counted)
    monkeypatch.setattr(tags, "tag_index", counted_index)
    with open_store(settings.paths.state, write=False) as store:
        run = prepare(settings, store, NOW)
        made = make_outputs(run, Context(NOW, record=False))
        made.discard_staged()
    assert calls == {"sorted": 1, "tag_index": 1}
    assert made.kept and not made.written, "nothing changed since the publish: every page kept"


def test_a_page_or_archive_document_deleted_or_resized_is_rendered_again(site: Site) -> None:
    _site(site)
    before = site.feed_bytes()
    page, other, doc = "post-3/index.html", "post-4/index.html", "feed-archive/1/rss.xml"
    month = next(n for n in before if n.startswith("archive/") and n.endswith("index.html"))
    stamps = {name: (site.feeds / name).stat().st_mtime_ns for name in before}
    (site.feeds / page).unlink()
    (site.feeds / other).write_bytes(before[other] + b"\n")
    (site.feeds / doc).unlink()
    (site.feeds / month).write_bytes(b"")
    assert site.publish("--no-send").returncode == 0
    after = site.feed_bytes()
    assert after == before
    touched = {name for name in before if (site.feeds / name).stat().st_mtime_ns != stamps[name]}
    assert {page, other, doc} <= touched
    assert not any(n.endswith("/index.html") and n.startswith("post-") for n in touched - {page, other}), touched


def test_output_folder_answers_for_missing_folders_files_and_sizes(tmp_path: Path) -> None:
    with OnDisk(tmp_path / "none") as missing:
        assert not missing.still_written("a/index.html", 0)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_bytes(b"12345")
    with OnDisk(tmp_path) as folder:
        assert folder.still_written("a/index.html", 5)
        assert not folder.still_written("a/index.html", 4)
        assert not folder.still_written("b/index.html", 5)
    assert folder.fd is None, "closed"


def test_reserved_names_the_first_owner(site: Site) -> None:
    settings = load_settings(site.root / "publisher.toml", site.root)
    assert reserved("feed-archive/1/rss.xml", settings) == "the feeds"
    assert reserved("rss.xml", settings) == "the feeds"
    assert reserved("tags/x/index.html", settings) == "the tag feeds"
    assert reserved("digests/x/index.html", settings) == "the digest"
    assert reserved("archive/index.html", settings) == "the home page and its archive"
    assert reserved("static/index.html", settings) == "the /static page of publisher serve"
    assert reserved("free/index.html", settings) is None
