"""Feeds as a feed reader sees them (feedparser), byte-for-byte stability, and article identity."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import feedparser
import pytest

from tests.conftest import CLOCK, EXAMPLE_ARTICLES, REPO, Site, run_cli
from tests.test_feed_validity import feed_errors

GOLDEN = Path(__file__).parent / "golden"
FEEDS = ("rss.xml", "atom.xml", "feed.json")


def example_site(tmp_path: Path) -> Path:
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE_ARTICLES, root / "articles")
    shutil.copy(REPO / "publisher.toml", root / "publisher.toml")
    return root


def entries(site: Site, name: str = "atom.xml") -> list[feedparser.FeedParserDict]:
    parsed = feedparser.parse((site.feeds / name).read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return list(parsed.entries)


def test_example_site_matches_golden_files(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    root = example_site(tmp_path)
    run_cli("publish", "--clock", CLOCK, cwd=root, check=True)
    if request.config.getoption("--update-golden"):  # only output free of the validator's known errors;
        GOLDEN.mkdir(exist_ok=True)  # then run ../shared/judge/feeds tests/golden and keep them at 0 errors
        for name in FEEDS:
            assert feed_errors(name, (root / "feeds" / name).read_bytes()) == [], f"{name}: not valid, not kept"
        for name in FEEDS:
            shutil.copy(root / "feeds" / name, GOLDEN / name)
    for name in FEEDS:
        assert (root / "feeds" / name).read_bytes() == (GOLDEN / name).read_bytes(), (
            f"{name} differs from tests/golden; if the change is intended, run pytest --update-golden")


def test_feed_reader_gets_every_field(tmp_path: Path) -> None:
    root = example_site(tmp_path)
    run_cli("publish", "--clock", CLOCK, cwd=root, check=True)
    items = json.loads((root / "feeds" / "feed.json").read_text(encoding="utf-8"))["items"]
    assert items, "the example site publishes articles"
    for name in ("rss.xml", "atom.xml"):
        parsed = feedparser.parse((root / "feeds" / name).read_bytes())
        assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
        assert [e.id for e in parsed.entries] == [i["id"] for i in items]
        for entry, item in zip(parsed.entries, items, strict=True):
            assert entry.link == item["url"] and entry.link.startswith("https://example.com/")
            assert entry.title == item["title"]
            assert entry.published_parsed is not None
            assert entry.content[0].value.strip()
            assert entry.summary.strip()
    dates = [i["date_published"] for i in items]
    assert dates == sorted(dates, reverse=True), "newest first"


def test_publishing_twice_rewrites_nothing(site: Site) -> None:
    site.write("a.md", "---\ntitle: A\ndate: 2026-11-01\n---\nHello [there](/x/).\n")
    site.write("b.txt", "B title\n\nSome text here.\n")
    assert site.publish().returncode == 0
    first = site.feed_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in site.feeds.rglob("*")}
    again = site.publish()
    assert again.returncode == 0 and f"written: 0, unchanged: {len(first)}" in again.stdout
    assert site.feed_bytes() == first
    assert {p: p.stat().st_mtime_ns for p in site.feeds.rglob("*")} == stamps


def test_same_input_and_clock_give_identical_bytes(make_site) -> None:  # type: ignore[no-untyped-def]
    outputs = []
    for name in ("one", "two"):
        site = make_site(name)
        site.write("a.md", "---\ntitle: A\n---\nText with a [link](img/a.png).\n")
        site.write("b.txt", "B\n\nText.\n")
        assert site.publish().returncode == 0
        outputs.append(site.feed_bytes())
    assert outputs[0] == outputs[1]


def test_edit_keeps_id_and_published_and_sets_updated(site: Site) -> None:
    path = site.write("post.txt", "Post\n\nFirst version.\n")
    site.publish(clock="2026-11-01T10:00:00Z")
    (before,) = entries(site)
    path.write_text("Post\n\nSecond version, edited.\n", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    site.publish(clock="2026-11-02T10:00:00Z")
    (after,) = entries(site)
    assert after.id == before.id
    assert after.published == before.published == "2026-11-01T10:00:00+00:00"
    assert after.updated == "2026-11-02T10:00:00+00:00"
    assert "Second version" in after.content[0].value


def test_id_survives_a_lost_cache_and_a_renamed_title(site: Site) -> None:
    path = site.write("post.md", "---\ntitle: Old title\nslug: kept\n---\nBody.\n")
    site.publish(clock="2026-11-01T10:00:00Z")
    (before,) = entries(site)
    path.write_text("---\ntitle: New title\nslug: kept\n---\nBody.\n", encoding="utf-8")
    site.publish(clock="2026-11-05T10:00:00Z")
    (after,) = entries(site)
    assert (after.id, after.title) == (before.id, "New title")


def test_drafts_and_future_articles_wait_for_their_time(site: Site) -> None:
    site.write("now.md", "---\ntitle: Now\ndate: 2026-11-01\n---\nText.\n")
    site.write("draft.md", "---\ntitle: Draft\ndraft: true\n---\nText.\n")
    site.write("later.md", "---\ntitle: Later\ndate: 2026-12-01T08:00:00+01:00\n---\nText.\n")
    result = site.publish(clock="2026-11-25T12:00:00Z")
    assert "2 waiting" in result.stdout
    assert [e.title for e in entries(site)] == ["Now"]
    site.publish(clock="2026-12-01T08:00:00Z")
    assert [e.title for e in entries(site)] == ["Later", "Now"]


def test_limit_keeps_the_newest(site: Site) -> None:
    (site.root / "publisher.toml").write_text(
        (site.root / "publisher.toml").read_text() + "\n[feeds]\nlimit = 2\n", encoding="utf-8")
    for day in (1, 2, 3):
        site.write(f"d{day}.md", f"---\ntitle: Day {day}\ndate: 2026-11-0{day}\n---\nText.\n")
    site.publish()
    assert [e.title for e in entries(site, "rss.xml")] == ["Day 3", "Day 2"]


def test_relative_links_and_images_become_absolute(site: Site) -> None:
    site.write("a.md", "---\ntitle: A\nimage: img/cover.png\n---\n[x](/about/) ![pic](pics/p.png) [f](#top)\n")
    site.publish()
    (entry,) = entries(site)
    html = entry.content[0].value
    assert 'href="https://example.com/about/"' in html
    assert 'src="https://example.com/pics/p.png"' in html
    assert 'href="https://example.com/a/#top"' in html
    item = json.loads((site.feeds / "feed.json").read_text())["items"][0]
    assert item["image"] == "https://example.com/img/cover.png"


def test_feed_date_is_the_newest_article_not_the_clock(site: Site) -> None:
    site.write("a.md", "---\ntitle: A\ndate: 2026-10-01T00:00:00Z\n---\nText.\n")
    site.publish(clock="2026-11-25T12:00:00Z")
    feed = feedparser.parse((site.feeds / "atom.xml").read_bytes()).feed
    assert feed.updated == "2026-10-01T00:00:00+00:00"
    rss = feedparser.parse((site.feeds / "rss.xml").read_bytes()).feed
    assert rss.updated == "Thu, 01 Oct 2026 00:00:00 +0000"


def test_a_lost_or_altered_output_file_is_written_again(site: Site) -> None:
    site.write("a.md", "---\ntitle: A\n---\nText.\n")
    site.publish()
    first = site.feed_bytes()
    (site.feeds / "rss.xml").unlink()
    (site.feeds / "atom.xml").write_bytes(b"broken")
    again = site.publish()
    assert "written: 2," in again.stdout
    assert site.feed_bytes() == first
