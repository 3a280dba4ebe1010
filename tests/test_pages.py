"""Article pages: one per published article at <output>/<slug>/index.html, through the real CLI."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

from tests.conftest import SEED, Site

ARTICLE = """\
---
title: {title}
date: 2026-11-{day:02}T09:00:00Z
author: Ana Writer
tags: [news]
{extra}
---

The first paragraph of {title}, long enough to be a summary.
"""


class Head(HTMLParser):
    """The parts of a page the tests read: <link>, <meta>, the JSON-LD script, <h1>, <a> and <form>."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []
        self.meta: dict[str, str] = {}
        self.scripts: list[str] = []
        self.forms: list[dict[str, str]] = []
        self.inputs: list[dict[str, str]] = []
        self.anchors: list[str] = []
        self.h1 = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "link":
            self.links.append(a)
        elif tag == "meta" and ("property" in a or "name" in a):
            self.meta[a.get("property") or a["name"]] = a.get("content", "")
        elif tag == "form":
            self.forms.append(a)
        elif tag == "input":
            self.inputs.append(a)
        elif tag == "a":
            self.anchors.append(a.get("href", ""))
        elif (tag == "script" and a.get("type") == "application/ld+json") or tag == "h1":
            self._in = tag
            (self.scripts.append("") if tag == "script" else None)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "h1":
            self.h1 += data


def parsed(path: Path) -> Head:
    head = Head()
    head.feed(path.read_text(encoding="utf-8"))
    return head


def write(site: Site, slug: str, title: str, day: int = 20, extra: str = "") -> Path:
    return site.write(f"{slug}.md", ARTICLE.format(title=title, day=day, extra=extra))


def test_a_page_per_article_with_meta_json_ld_and_feed_links(site: Site) -> None:
    write(site, "first-post", "Fish & Chips at 5 < 6", extra="image: /img/a.jpg\nimage_alt: A red kite")
    write(site, "second-post", "Second Post", day=21)
    result = site.publish("--no-send")
    assert result.returncode == 0, result.stderr
    for slug, title in (("first-post", "Fish & Chips at 5 < 6"), ("second-post", "Second Post")):
        page = parsed(site.feeds / slug / "index.html")
        url = f"https://example.com/{slug}/"
        assert page.h1 == title
        assert {"rel": "canonical", "href": url} in page.links
        assert page.meta["og:title"] == title and page.meta["og:url"] == url
        assert page.meta["og:type"] == "article" and page.meta["twitter:title"] == title
        (ld_text,) = page.scripts
        assert "</" not in ld_text
        ld = json.loads(ld_text)
        assert ld["@type"] == "Article" and ld["headline"] == title and ld["url"] == url
        assert ld["author"]["name"] == "Ana Writer"
        feeds = {(link["type"], link["href"]) for link in page.links
                 if link.get("rel") == "alternate" and "/tags/" not in link["href"]}
        assert feeds == {("application/rss+xml", "https://example.com/rss.xml"),
                         ("application/atom+xml", "https://example.com/atom.xml"),
                         ("application/feed+json", "https://example.com/feed.json")}
        (form,) = page.forms
        assert form["method"] == "post" and form["action"] == "https://example.com/subscribe"
        assert {i["name"] for i in page.inputs} == {"email", "website"}
    first = (site.feeds / "first-post" / "index.html").read_text(encoding="utf-8")
    assert '<img src="https://example.com/img/a.jpg" alt="A red kite">' in first
    assert "20 November 2026" in first and "1 min read" in first
    assert "Fish &amp; Chips at 5 &lt; 6" in first  # autoescaped


def test_pages_off_writes_none(site: Site) -> None:
    toml = site.root / "publisher.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('timezone = "UTC"\n', 'timezone = "UTC"\npages = false\n'),
                    encoding="utf-8")
    write(site, "first-post", "First Post")
    assert site.publish("--no-send").returncode == 0
    assert sorted(p.name for p in site.feeds.iterdir() if p.is_dir()) == ["digests", "tags"]  # tag feeds, no pages
    assert (site.feeds / "rss.xml").is_file()


def test_removed_and_drafted_articles_lose_their_page_and_nothing_else(site: Site) -> None:
    gone = write(site, "gone-soon", "Gone Soon")
    draft = write(site, "draft-later", "Draft Later", day=21)
    write(site, "stays", "Stays", day=22)
    assert site.publish("--no-send").returncode == 0
    (site.feeds / "draft-later" / "notes.txt").write_text("the operator's own file", encoding="utf-8")
    (site.feeds / "mine").mkdir()
    (site.feeds / "mine" / "index.html").write_text("not publisher's", encoding="utf-8")
    before = site.feed_bytes()
    gone.unlink()
    draft.write_text(draft.read_text(encoding="utf-8").replace("author:", "draft: true\nauthor:"), encoding="utf-8")
    assert site.publish("--no-send").returncode == 0
    after = site.feed_bytes()
    assert not (site.feeds / "gone-soon").exists()  # its now-empty folder too
    assert set(before) - set(after) == {"gone-soon/index.html", "draft-later/index.html"}
    assert after["draft-later/notes.txt"] == b"the operator's own file"
    assert after["mine/index.html"] == b"not publisher's"
    assert b"Stays" in after["stays/index.html"]  # rewritten: its related reading lost the articles gone


def test_future_article_page_removed_and_back_when_due(site: Site) -> None:
    path = write(site, "later", "Later", day=20)
    assert site.publish("--no-send").returncode == 0
    assert (site.feeds / "later" / "index.html").is_file()
    path.write_text(path.read_text(encoding="utf-8").replace("2026-11-20", "2026-12-20"), encoding="utf-8")
    assert site.publish("--no-send").returncode == 0
    assert not (site.feeds / "later").exists()
    assert site.publish("--no-send", clock="2026-12-21T00:00:00Z").returncode == 0
    assert (site.feeds / "later" / "index.html").is_file()


def test_reserved_slug_is_one_error_naming_the_file_and_the_rest_publishes(site: Site) -> None:
    for number, slug in enumerate(("digests", "subscribe", "archive", "tags")):
        write(site, f"post-{number}", f"Post {number}", extra=f"slug: {slug}")
    write(site, "fine", "Fine Post")
    result = site.publish("--no-send")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 4, result.stderr
    for number, slug in enumerate(("digests", "subscribe", "archive", "tags")):
        assert sum(f"post-{number}.md" in e and f"'{slug}' is reserved" in e for e in errors) == 1
    assert (site.feeds / "fine" / "index.html").is_file()
    assert not (site.feeds / "subscribe").exists() and not (site.feeds / "tags" / "index.html").exists()
    rss = (site.feeds / "rss.xml").read_text(encoding="utf-8")
    assert "Fine Post" in rss and "Post 0" not in rss


def test_noop_publish_rewrites_no_page(seed_site: Site) -> None:
    write(seed_site, "other", "Other Post")
    assert seed_site.publish("--no-send").returncode == 0
    pages = sorted(seed_site.feeds.glob("*/index.html"))
    assert len(pages) == 2
    stamps = {p: p.stat().st_mtime_ns for p in pages}
    (seed_site.articles / "new.md").write_text(ARTICLE.format(title="New", day=23, extra=""), encoding="utf-8")
    second = seed_site.publish("--no-send")  # a full run: the old pages' inputs are unchanged
    assert second.returncode == 0
    third = seed_site.publish("--no-send")  # the no-op path
    assert third.returncode == 0 and "files written: 0" in third.stderr + third.stdout
    assert {p: p.stat().st_mtime_ns for p in pages} == stamps
    assert (seed_site.feeds / "new" / "index.html").is_file()


def test_same_input_and_clock_give_identical_pages(make_site: object, tmp_path: Path) -> None:
    outputs = []
    for name in ("one", "two"):
        site = Site(tmp_path / name)
        shutil.copy(SEED, site.articles / SEED.name)
        write(site, "other", "Other Post")
        assert site.publish("--no-send").returncode == 0
        outputs.append({n: b for n, b in site.feed_bytes().items() if n.endswith("/index.html")})
    assert len(outputs[0]) == 2 and outputs[0] == outputs[1]


def test_link_article_names_its_original_and_feeds_link_to_it(site: Site) -> None:
    write(site, "syndicated", "Syndicated", extra="link: https://blog.example.org/2026/original")
    assert site.publish("--no-send").returncode == 0
    page = parsed(site.feeds / "syndicated" / "index.html")
    assert "https://blog.example.org/2026/original" in page.anchors
    assert "Originally published at" in (site.feeds / "syndicated" / "index.html").read_text(encoding="utf-8")
    assert {"rel": "canonical", "href": "https://blog.example.org/2026/original"} in page.links
    feed = json.loads((site.feeds / "feed.json").read_text(encoding="utf-8"))
    assert feed["items"][0]["url"] == "https://blog.example.org/2026/original"
