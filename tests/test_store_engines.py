"""The Store API behaves the same on both engines (`state_url`: an SQLite file, or a PostgreSQL database of
its own): identities, parse cache, memo, meta, related lists and index, digests; upserts replace rows; one
row the database refuses is left out while the others go in (a savepoint keeps PostgreSQL's transaction
usable); a read-only store changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.models import Entry, SourceFile
from publisher.state.location import StateLocation, locate
from publisher.store import open_store

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SITE = "https://example.com/"


def location(state_url: str, tmp_path: Path) -> StateLocation:
    return locate(state_url, tmp_path, {}, "test")


def entry(slug: str, content_hash: str = "h1", *, guid: str | None = None, date: datetime | None = None) -> Entry:
    return Entry(source=f"{slug}.md", slug=slug, title=slug.title(), summary="", reading_minutes=1,
                 content_hash=content_hash, date=date, guid=guid, tags=("t",), references=("r",))


def source(slug: str, mtime_ns: int = 1) -> SourceFile:
    return SourceFile(path=f"/articles/{slug}.md", rel=f"{slug}.md", mtime_ns=mtime_ns, size=10)


def test_identities_are_given_once_and_edits_set_updated(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    dated = datetime(2026, 10, 1, tzinfo=UTC)
    with open_store(where) as store:
        first, refused = store.record([entry("a"), entry("b", date=dated)], NOW, SITE)
    assert refused == {}
    assert first["a"].published == NOW and first["b"].published == dated and first["a"].updated is None
    later = NOW + timedelta(days=1)
    with open_store(where) as store:
        second, refused = store.record([entry("a", "h2"), entry("b")], later, SITE)
        assert store.articles().ids() == {first["a"].id: ("a", "a.md"), first["b"].id: ("b", "b.md")}
    assert refused == {}
    assert second["a"].id == first["a"].id and second["a"].updated == later and second["a"].first_seen == NOW
    assert second["b"].id == first["b"].id and second["b"].updated is None


def test_a_refused_article_is_left_out_and_the_rest_is_kept(state_url: str, tmp_path: Path) -> None:
    """Two articles claiming one id: the database refuses the second; the run's transaction goes on."""
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        kept, refused = store.record([entry("a", guid="urn:x:1"), entry("b", guid="urn:x:1"), entry("c")],
                                     NOW, SITE)
        assert set(refused) == {"b"} and set(kept) == {"a", "c"}
        store.meta_put("after", "the transaction still works")
    with open_store(where, write=False) as store:
        assert sorted(slug for slug, _ in store.articles().ids().values()) == ["a", "c"]
        assert store.meta_get("after") == "the transaction still works"


def test_the_parse_cache_is_replaced_per_file_and_forgotten(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        assert store.save_cache([(source("a"), entry("a"), "<p>a1</p>"), (source("b"), entry("b"), "<p>b</p>")],
                                "fp") == {}
    with open_store(where) as store:
        assert store.save_cache([(source("a", 2), entry("a", "h2"), "<p>a2</p>")], "fp") == {}
        cached = store.cached("fp")
        assert {rel: (mtime, entry.content_hash) for rel, (mtime, _, entry) in cached.items()} == {
            "a.md": (2, "h2"), "b.md": (1, "h1")}
        assert cached["a.md"][2] == entry("a", "h2")
        assert store.html_for(["a.md", "b.md", "gone.md"]) == {"a.md": "<p>a2</p>", "b.md": "<p>b</p>"}
        assert store.cached("other fingerprint") == {}
        store.forget_sources({"a.md"})
    with open_store(where, write=False) as store:
        assert set(store.cached("fp")) == {"a.md"}


def test_a_cache_row_the_database_refuses_is_reported_and_the_others_cached(state_url: str, tmp_path: Path) -> None:
    """A lone surrogate cannot be encoded by either engine's driver: that row alone is refused."""
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        refused = store.save_cache([(source("a"), entry("a"), "<p>a</p>"), (source("bad"), entry("bad"), "\ud800"),
                                    (source("c"), entry("c"), "<p>c</p>")], "fp")
    assert set(refused) == {"bad.md"}, refused
    with open_store(where, write=False) as store:
        assert set(store.cached("fp")) == {"a.md", "c.md"}


def test_meta_and_memo_are_upserted(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        store.meta_put("k", "one")
        store.memo_put("rss.xml", "key1", "sha1")
    with open_store(where) as store:
        assert (store.meta_get("k"), store.memo_get("rss.xml")) == ("one", ("key1", "sha1"))
        store.meta_put("k", "two")
        store.memo_put("rss.xml", "key2", "sha2")
        assert store.memo_get("atom.xml") is None and store.meta_get("missing") is None
    with open_store(where, write=False) as store:
        assert (store.meta_get("k"), store.memo_get("rss.xml")) == ("two", ("key2", "sha2"))
        count = store.conn.execute(sa.text("SELECT count(*) FROM memo")).scalar()
        assert count == 1


def test_related_lists_and_index_are_replaced(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        store.save_related_lists({"a": ("k1", [("b", 0.5, "tags")]), "b": ("k1", [("a", 0.5, "tags")])}, {"a", "b"})
        store.save_related_index({"a": "h1"}, b"\x00\x01index-one")
    with open_store(where) as store:
        store.save_related_lists({"a": ("k2", [("c", 0.25, "words")])}, {"a", "c"})
        store.save_related_index({"a": "h2", "c": "h3"}, b"\xffindex-two")
    with open_store(where, write=False) as store:
        assert store.related_lists() == {"a": ("k2", [("c", 0.25, "words")])}
        assert store.related_index() == ({"a": "h2", "c": "h3"}, b"\xffindex-two")


def test_digests_are_recorded_and_read_back(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        assert store.last_digest_time() is None and store.new_digest_id("2026-11-25") == "2026-11-25"
        store.record_digest("2026-11-25", NOW, ["a", "b"], "Subject 1", "<p>1</p>", "one")
        second = store.new_digest_id("2026-11-25")
        store.record_digest(second, NOW + timedelta(hours=1), ["c"], "Subject 2", "<p>2</p>", "two")
    assert second == "2026-11-25-2"
    with open_store(where, write=False) as store:
        assert store.last_digest_time() == NOW + timedelta(hours=1)
        assert store.carried() == {"a", "b", "c"}
        assert store.digest_message(second) == ("Subject 2", "<p>2</p>", "two")
        assert store.digest_files() == [("2026-11-25", "<p>1</p>", "one"), (second, "<p>2</p>", "two")]
        assert store.digest_history() == [(second, NOW + timedelta(hours=1), ["c"]),
                                          ("2026-11-25", NOW, ["a", "b"])]
        assert store.new_digest_id("2026-11-25") == "2026-11-25-3"


def test_a_read_only_store_changes_nothing(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        store.record([entry("a")], NOW, SITE)
    with open_store(where, write=False) as store:
        ids, _ = store.record([entry("new")], NOW, SITE)
        assert "new" in ids, "a read-only run still sees the identity it would give"
        store.save_cache([(source("new"), entry("new"), "<p>new</p>")], "fp")
        assert store.html_for(["new.md"]) == {"new.md": "<p>new</p>"}
        store.save_related_index({"new": "h"}, b"x")
    with open_store(where, write=False) as store:
        assert [slug for slug, _ in store.articles().ids().values()] == ["a"]
        assert store.cached("fp") == {} and store.related_index() is None


def test_changes_of_a_failed_run_are_not_kept(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    with open_store(where) as store:
        store.meta_put("k", "kept")
    with pytest.raises(RuntimeError), open_store(where) as store:
        store.meta_put("k", "lost")
        raise RuntimeError("the run failed")
    with open_store(where, write=False) as store:
        assert store.meta_get("k") == "kept"


def test_a_checkpoint_makes_work_durable_before_the_run_ends(state_url: str, tmp_path: Path) -> None:
    where = location(state_url, tmp_path)
    with pytest.raises(RuntimeError), open_store(where) as store:
        store.meta_put("k", "checkpointed")
        store.checkpoint()
        store.meta_put("k", "lost")
        raise RuntimeError("the run failed")
    with open_store(where, write=False) as store:
        assert store.meta_get("k") == "checkpointed"
