"""Per-tag feeds: feeds/tags/<tag-slug>/rss.xml, atom.xml, feed.json for every tag with at least
`feeds.tag_min` articles, made by real publish runs (the CLI in a subprocess, a real SQLite state), read
back with feedparser; the article pages and the home page link them; WebSub hubs hear of them."""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher.config import load_settings
from publisher.outputs import tags as tag_output
from publisher.pipeline import publish
from publisher.render import render_feeds_checked
from publisher.tagslug import MAX_BYTES, fold, safe_part, slugify
from tests.conftest import CLOCK, Site
from tests.test_websub import Hub
from tests.test_websub import publish as publish_with_hub

URL = "https://example.com/"
FORMATS = ("rss.xml", "atom.xml", "feed.json")
ARTICLE = ("---\ntitle: {title}\ndate: 2026-11-{day:02}T09:00:00Z\ntags: {tags}\n---\n\n"
           "The text of {title}, long enough.\n")


def write(site: Site, slug: str, day: int, tags: list[str], title: str | None = None) -> None:
    tag_list = json.dumps(tags, ensure_ascii=False)
    site.write(f"{slug}.md", ARTICLE.format(title=title or slug.title(), day=day, tags=tag_list))


def published(site: Site, *args: str) -> str:
    """Publish (no delivery); what the CLI printed (warnings and the summary line)."""
    result = site.publish("--no-send", *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def tag_files(site: Site) -> list[str]:
    return sorted(p.relative_to(site.feeds).as_posix() for p in (site.feeds / "tags").rglob("*") if p.is_file()) \
        if (site.feeds / "tags").is_dir() else []


def read_feed(site: Site, slug: str, name: str = "atom.xml") -> feedparser.FeedParserDict:
    parsed = feedparser.parse((site.feeds / "tags" / slug / name).read_bytes())
    assert parsed.bozo == 0, (slug, name, parsed.get("bozo_exception"))
    return parsed


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


@pytest.mark.parametrize(("tag", "slug"), [
    ("Café", "café"), ("  Café   au  Lait ", "café-au-lait"), ("日本語", "日本語"), ("Ελληνικά", "ελληνικά"),
    ("C++", "c"), ("C#/.NET", "c-net"), ("../etc", "etc"), ("ﬁle", "file"), ("Straße", "strasse"),
    ("हिन्दी", "हिन्दी"), ("🎉", ""), ("!!!", ""), ("a_b", "a-b"), ("Ⅻ", "xii"),
])
def test_slugs(tag: str, slug: str) -> None:
    assert slugify(tag) == slug
    assert slugify(slug) == slug or not slug, "a slug is its own slug"


@given(st.text())
def test_any_text_gives_a_safe_stable_slug(text: str) -> None:
    slug = slugify(text)
    assert slug == "" or safe_part(slug)
    assert len(slug.encode("utf-8")) <= MAX_BYTES
    assert not slug.startswith("-") and not slug.endswith("-") and "--" not in slug
    assert slugify(text) == slug == slugify(fold(text)) == slugify(unicodedata.normalize("NFKC", text))


def test_unicode_tags_get_their_feeds_with_the_right_items(site: Site) -> None:
    write(site, "one", 20, ["Café", "日本語"])
    write(site, "two", 21, ["Café", "Ελληνικά"])
    write(site, "three", 22, ["CAFÉ", "ελληνικά", "日本語"])
    write(site, "untagged", 23, [])
    assert warnings(published(site)) == []
    assert tag_files(site) == sorted(f"tags/{slug}/{name}" for slug in ("café", "日本語", "ελληνικά")
                                     for name in FORMATS)
    expected = {"café": ("Café", ["Three", "Two", "One"]), "日本語": ("日本語", ["Three", "One"]),
                "ελληνικά": ("Ελληνικά", ["Three", "Two"])}
    for slug, (name, titles) in expected.items():
        for fmt in ("rss.xml", "atom.xml"):
            parsed = read_feed(site, slug, fmt)
            assert parsed.feed.title == f"Test Site: {name}"
            assert [e.title for e in parsed.entries] == titles, (slug, fmt)
        self_url = [link.href for link in read_feed(site, slug).feed.links if link.rel == "self"]
        assert self_url == [f"{URL}tags/{_quoted(slug)}/atom.xml"]
        feed = json.loads((site.feeds / "tags" / slug / "feed.json").read_bytes())
        assert [item["title"] for item in feed["items"]] == titles
        assert feed["feed_url"] == f"{URL}tags/{_quoted(slug)}/feed.json"
    main = feedparser.parse((site.feeds / "atom.xml").read_bytes())
    ids = {e.id for e in main.entries}
    assert {e.id for e in read_feed(site, "café").entries} <= ids, "a tag feed's items keep their ids"


def _quoted(slug: str) -> str:
    from publisher.render import uri

    return uri(slug)


def test_tag_feeds_hold_the_newest_feeds_limit_articles_and_only_configured_formats(site: Site) -> None:
    site.configure('[feeds]\nlimit = 2\nformats = ["atom", "json"]')
    for day in (10, 11, 12):
        write(site, f"post-{day}", day, ["Notes"])
    published(site)
    assert tag_files(site) == ["tags/notes/atom.xml", "tags/notes/feed.json"]
    assert [e.title for e in read_feed(site, "notes").entries] == ["Post-12", "Post-11"]


def test_tag_min_is_respected_and_zero_means_no_tag_feeds(site: Site) -> None:
    write(site, "one", 20, ["rare", "common"])
    write(site, "two", 21, ["common"])
    site.configure("[feeds]\ntag_min = 2")
    published(site)
    assert tag_files(site) == [f"tags/common/{name}" for name in sorted(FORMATS)]
    page = links_of(site.feeds / "one" / "index.html")
    assert [a for a in page.anchors if "/tags/" in a] == [f"{URL}tags/common/rss.xml"], "rare has no feed"
    (site.root / "publisher.toml").write_text((site.root / "publisher.toml").read_text().replace(
        "tag_min = 2", "tag_min = 0"))
    published(site)
    assert not (site.feeds / "tags").exists(), "tag_min = 0: every tag feed removed"
    assert "/tags/" not in (site.feeds / "one" / "index.html").read_text(), "the page was rendered again"
    assert "/tags/" not in (site.feeds / "index.html").read_text()


def test_tags_on_one_slug_are_one_feed_with_one_warning(site: Site) -> None:
    write(site, "cee", 20, ["C"])
    write(site, "cpp", 21, ["C++"])
    write(site, "more-cpp", 22, ["c++", "C"])
    lines = warnings(published(site))
    assert len(lines) == 1, lines
    assert "'C'" in lines[0] and "'C++'" in lines[0] and "tags/c/" in lines[0]
    assert tag_files(site) == [f"tags/c/{name}" for name in sorted(FORMATS)]
    assert [e.title for e in read_feed(site, "c").entries] == ["More-Cpp", "Cpp", "Cee"]


def test_a_tag_without_letters_gets_no_feed_and_one_warning(site: Site) -> None:
    write(site, "party", 20, ["🎉", "news"])
    write(site, "again", 21, ["🎉"])
    lines = warnings(published(site))
    assert len(lines) == 1, lines
    assert "'🎉'" in lines[0] and "again.md" in lines[0] and "no feed" in lines[0]
    assert tag_files(site) == [f"tags/news/{name}" for name in sorted(FORMATS)]


def test_a_no_op_publish_writes_nothing_and_an_unrelated_change_renders_no_tag_feed(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    write(site, "one", 20, ["alpha", "beta"])
    write(site, "two", 21, ["beta"])
    published(site)
    before = {name: (site.feeds / name).read_bytes() for name in tag_files(site)}
    assert "files written: 0," in published(site)
    rendered: list[str] = []

    def counting(*args: Any, **kwargs: Any) -> object:
        rendered.append(str(kwargs["folder"]))
        return render_feeds_checked(*args, **kwargs)

    monkeypatch.setattr(tag_output, "render_feeds_checked", counting)
    write(site, "three", 22, ["gamma"])
    settings = load_settings(site.root / "publisher.toml", site.root)
    report = publish(settings, datetime.fromisoformat(CLOCK.replace("Z", "+00:00")))
    assert rendered == ["tags/gamma/"], "only the new tag's feeds are rendered"
    assert not [n for n in report.written if n.startswith(("tags/alpha/", "tags/beta/"))]
    assert all((site.feeds / name).read_bytes() == data for name, data in before.items())


def test_a_tag_losing_its_last_article_loses_its_files(site: Site) -> None:
    write(site, "one", 20, ["keep", "fleeting"])
    write(site, "two", 21, ["keep"])
    published(site)
    assert (site.feeds / "tags" / "fleeting" / "atom.xml").is_file()
    write(site, "one", 20, ["keep"])
    published(site)
    assert tag_files(site) == [f"tags/keep/{name}" for name in sorted(FORMATS)]
    assert not (site.feeds / "tags" / "fleeting").exists(), "its folder goes too"
    assert "tags/fleeting/" not in (site.feeds / "one" / "index.html").read_text()
    assert "tags/fleeting/" not in (site.feeds / "index.html").read_text()
    (site.articles / "two.md").unlink()
    (site.articles / "one.md").unlink()
    published(site)
    assert not (site.feeds / "tags").exists()


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.alternates: list[dict[str, str]] = []
        self.anchors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "link" and a.get("rel") == "alternate":
            self.alternates.append(a)
        elif tag == "a" and "href" in a:
            self.anchors.append(a["href"])


def links_of(path: Path) -> Links:
    parser = Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def on_disk(site: Site, url: str) -> Path:
    assert url.startswith(URL), url
    return site.feeds / unquote(urlsplit(url).path.lstrip("/"))


def test_article_pages_and_home_link_the_tag_feeds(site: Site) -> None:
    write(site, "one", 20, ["Café", "日本語", "C", "🎉"])
    write(site, "two", 21, ["café", "C++"])
    published(site)
    page = links_of(site.feeds / "one" / "index.html")
    tagged = [a for a in page.alternates if "/tags/" in a["href"]]
    assert {a["title"] for a in tagged} == {"Test Site: Café", "Test Site: 日本語", "Test Site: C"}
    assert len(tagged) == 9, "each tag feed once per format (C and C++ share one)"
    assert {a["type"] for a in tagged} == {"application/rss+xml", "application/atom+xml", "application/feed+json"}
    for link in tagged:
        assert on_disk(site, link["href"]).is_file(), link
    visible = [a for a in page.anchors if "/tags/" in a]
    assert len(visible) == 3 and all(on_disk(site, a).is_file() for a in visible)
    assert "🎉" in (site.feeds / "one" / "index.html").read_text(), "a tag without a feed is shown, unlinked"
    home = links_of(site.feeds / "index.html")
    topics = [a for a in home.anchors if "/tags/" in a]
    assert len(topics) == 9 and all(on_disk(site, a).is_file() for a in topics)
    assert {unquote(urlsplit(a).path).split("/")[2] for a in topics} == {"café", "日本語", "c"}
    text = (site.feeds / "index.html").read_text()
    assert "Topics" in text and "(2)" in text


def test_changed_tag_feeds_are_pinged(site: Site) -> None:
    hub = Hub()
    try:
        site.configure(f'[feeds]\nformats = ["atom"]\nhubs = ["{hub.url}"]')
        write(site, "one", 20, ["Café"])
        write(site, "two", 21, ["news"])
        assert publish_with_hub(site).returncode == 0
        assert sorted(hub.fed()) == [f"{URL}atom.xml", f"{URL}tags/caf%C3%A9/atom.xml", f"{URL}tags/news/atom.xml"]
        hub.pings.clear()
        write(site, "three", 22, ["news"])
        assert publish_with_hub(site).returncode == 0
        assert sorted(hub.fed()) == [f"{URL}atom.xml", f"{URL}tags/news/atom.xml"], "the café feed did not change"
    finally:
        hub.close()
