"""Feeds valid as the W3C Feed Validator sees them, on hostile articles too, and one article that cannot be
rendered never stops the feeds.

`feed_errors` checks, with lxml and urllib (not the validator, which is not ours to import), the errors
the W3C validator reported on our feeds: a media:group of one media:content, characters that may not
appear in a URI, an empty body. The golden files are judged with it (and with `judge/feeds` before they
are regenerated: see test_feeds.py)."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from publisher.config import load_settings
from publisher.models import Article, Entry, Identity
from publisher.render import render_feeds, render_feeds_checked, uri
from tests.conftest import Site

GOLDEN = Path(__file__).parent / "golden"
MEDIA = "{http://search.yahoo.com/mrss/}"
ATOM = "{http://www.w3.org/2005/Atom}"
URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")  # RFC 3986: every character a URI may hold
HOSTILE = {
    "quote-image.md": "---\ntitle: Quote image\ndate: 2026-11-20\nimage: 'https://x/\" onerror=\"alert(1)'\n---\n"
                      "An image value with quotes.\n",
    "script-image.md": "---\ntitle: Script image\ndate: 2026-11-20\n"
                       "image: 'https://example.com/<script>alert(1)</script>.png'\n---\nAn image value with a tag.\n",
    "日本語.txt": "Japanese slug\n\nAn article in a file with a non-ASCII name.\n",
    "title-tags.md": "---\ntitle: 'Cross-site <script>alert(1)</script> test & <b>more</b>'\ndate: 2026-11-21\n---\n"
               "A title with tags.\n",
    "script.md": "---\ntitle: Only script\ndate: 2026-11-22\n---\n<script>alert(1)</script>\n",
    "good.md": "---\ntitle: Good\ndate: 2026-11-23\nimage: /img/a.png\n---\nA good article.\n",
}


def uri_errors(where: str, value: str | None) -> list[str]:
    if value is None or URI_CHARS.fullmatch(value):
        return []
    return [f"{where}: not a URI: {value!r}"]


def xml_errors(data: bytes) -> list[str]:
    root = etree.fromstring(data)
    errors = [f"media:group with {len(g.findall(f'{MEDIA}content'))} media:content"
              for g in root.iter(f"{MEDIA}group") if len(g.findall(f"{MEDIA}content")) < 2]
    for element in root.iter(f"{MEDIA}content", f"{ATOM}link"):
        errors += uri_errors(element.tag, element.get("url") or element.get("href"))
    for element in root.iter("link", "comments", f"{ATOM}id"):
        errors += uri_errors(element.tag, (element.text or "").strip())
    for element in root.iter("guid"):
        if element.get("isPermaLink", "true") == "true":
            errors += uri_errors("guid", (element.text or "").strip())
    for element in root.iter("{http://purl.org/rss/1.0/modules/content/}encoded", f"{ATOM}content"):
        if not (element.text or "").strip():
            errors.append(f"{element.tag}: empty")
    return errors


def json_errors(data: bytes) -> list[str]:
    errors = []
    for item in json.loads(data)["items"]:
        if not (item.get("content_html") or item.get("content_text") or "").strip():
            errors.append(f"{item['id']}: no content (content_html {item.get('content_html')!r})")
        if "content_html" in item and not item["content_html"].strip():
            errors.append(f"{item['id']}: blank content_html")
        errors += uri_errors("url", item.get("url")) + uri_errors("image", item.get("image"))
    return errors


def feed_errors(name: str, data: bytes) -> list[str]:
    """The validator's errors we have met, found in one feed file (empty: none)."""
    return json_errors(data) if name.endswith(".json") else xml_errors(data)


@pytest.mark.parametrize("name", ["rss.xml", "atom.xml", "feed.json"])
def test_golden_files_are_valid(name: str) -> None:
    data = (GOLDEN / name).read_bytes()
    assert feed_errors(name, data) == []
    if name.endswith(".xml"):
        assert feedparser.parse(data).bozo == 0


def test_the_checks_catch_what_the_validator_caught() -> None:
    """The checks above fail on the errors the W3C validator reported (so they can fail)."""
    group = (b'<rss xmlns:media="http://search.yahoo.com/mrss/"><channel><item><link>https://e.com/\xe6\x97\xa5/'
             b'</link><media:group><media:content url="https://x/&quot; a"/></media:group></item></channel></rss>')
    assert len(xml_errors(group)) == 3
    blank = json.dumps({"items": [{"id": "1", "content_html": " ", "url": "https://e.com/a b"}]}).encode()
    assert len(json_errors(blank)) == 3


def test_uri_percent_encodes_only_what_a_uri_cannot_hold() -> None:
    assert uri("https://example.com/a/?q=1&r=%20#top") == "https://example.com/a/?q=1&r=%20#top"
    assert uri("https://example.com/日本語/") == "https://example.com/%E6%97%A5%E6%9C%AC%E8%AA%9E/"
    assert uri('https://x/" onerror="a(1)') == "https://x/%22%20onerror=%22a(1)"
    assert uri("https://e.com/<script>") == "https://e.com/%3Cscript%3E"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Site:
    site = Site(tmp_path_factory.mktemp("hostile") / "site")
    for name, text in HOSTILE.items():
        site.write(name, text)
    result = site.publish()
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    return site


@pytest.mark.parametrize("name", ["rss.xml", "atom.xml", "feed.json"])
def test_hostile_articles_give_valid_feeds(hostile: Site, name: str) -> None:
    data = (hostile.feeds / name).read_bytes()
    assert feed_errors(name, data) == []
    if name.endswith(".json"):
        items = json.loads(data)["items"]
        titles, bodies = [i["title"] for i in items], [i.get("content_html", "") for i in items]
    else:
        root = etree.fromstring(data)
        titles = [t.text or "" for t in root.iter("title", f"{ATOM}title")]
        bodies = [c.text or "" for c in root.iter(f"{ATOM}content", "{*}encoded", "description", f"{ATOM}summary")]
    assert not [t for t in titles if "&lt;" in t or "&amp;" in t], "a title escaped twice"
    assert not [b for b in bodies if "<script" in b.lower()], "markup from a title or body made it into HTML"


@pytest.mark.parametrize("name", ["rss.xml", "atom.xml"])
def test_hostile_titles_are_escaped_once_and_links_are_uris(hostile: Site, name: str) -> None:
    items = {i["url"]: i for i in json.loads((hostile.feeds / "feed.json").read_bytes())["items"]}
    parsed = feedparser.parse((hostile.feeds / name).read_bytes())
    assert parsed.bozo == 0
    assert {e.link: e.title for e in parsed.entries} == {u: i["title"] for u, i in items.items()}
    assert "https://example.com/%E6%97%A5%E6%9C%AC%E8%AA%9E/" in items
    tagged = next(i["title"] for i in items.values() if i["title"].startswith("Cross-site"))
    assert "&lt;" not in tagged and "&amp;" not in tagged, "JSON holds the text, not escaped HTML"
    images = [m["url"] for e in parsed.entries for m in e.get("media_content", [])]
    assert "https://example.com/img/a.png" in images and all(URI_CHARS.fullmatch(u) for u in images)


def test_a_body_that_sanitises_to_nothing_is_refused_at_load_and_never_blank_in_a_feed(site: Site,
                                                                                     tmp_path: Path) -> None:
    """The load boundary refuses such an article (one error line naming it); the renderers, given one
    anyway, never write whitespace-only content: JSON Feed gets content_text, RSS and Atom the summary."""
    site.write("script.md", "---\ntitle: Only script\nsummary: What it was about.\n---\n<script>alert(1)</script>\n")
    site.write("good.md", "---\ntitle: Good\n---\nA good article.\n")
    result = site.publish()
    assert result.returncode == 1 and "error: script.md" in result.stderr and "Traceback" not in result.stderr
    settings = load_settings(None, tmp_path)
    blank = article("blank", "Only script", html=" \n ")
    files, problems = render_feeds_checked(settings.site, [blank], ["rss", "atom", "json"])
    assert problems == []
    (item,) = json.loads(files["feed.json"])["items"]
    assert "content_html" not in item and item["content_text"] == "A summary."
    for name in ("rss.xml", "atom.xml"):
        assert feed_errors(name, files[name]) == []
        (entry,) = feedparser.parse(files[name]).entries
        assert entry.content[0].value == "<p>A summary.</p>"


def test_pub_date_is_the_article_date_not_the_clock(site: Site) -> None:
    site.write("a.md", "---\ntitle: A\ndate: 2026-10-01T09:30:00Z\n---\nText.\n")
    assert site.publish(clock="2026-11-25T12:00:00Z").returncode == 0
    rss = etree.fromstring((site.feeds / "rss.xml").read_bytes())
    assert [e.text for e in rss.iter("pubDate")] == ["Thu, 01 Oct 2026 09:30:00 +0000"]
    atom = etree.fromstring((site.feeds / "atom.xml").read_bytes())
    entry = atom.find(f"{ATOM}entry")
    assert entry is not None
    assert entry.findtext(f"{ATOM}published") == entry.findtext(f"{ATOM}updated") == "2026-10-01T09:30:00+00:00"
    (item,) = json.loads((site.feeds / "feed.json").read_bytes())["items"]
    assert item["date_published"] == item["date_modified"] == "2026-10-01T09:30:00+00:00"


def article(slug: str, title: str, html: str = "<p>Text.</p>") -> Article:
    when = datetime(2026, 10, 1, tzinfo=UTC)
    entry = Entry(f"{slug}.md", slug, title, "A summary.", 1, "hash", when)
    return Article(entry, Identity(f"urn:uuid:{slug}", when, None, when), f"https://example.com/{slug}/", html)


def test_an_article_that_cannot_be_rendered_is_reported_and_left_out(tmp_path: Path) -> None:
    """Past the load boundary nothing should make lxml raise; if something does, the rest still publish."""
    site = load_settings(None, tmp_path).site
    good, bad = article("good", "Good"), article("bad", "A\x01B")
    files, problems = render_feeds_checked(site, [good, bad, article("also", "Also good")], ["rss", "atom", "json"])
    assert [(p.path, p.hint, p.severity) for p in problems] == [("bad.md", "fix or remove the article", "error")]
    assert "cannot be rendered into the feeds: ValueError: All strings must be XML compatible" in problems[0].message
    for name in ("rss.xml", "atom.xml"):
        assert [e.title for e in feedparser.parse(files[name]).entries] == ["Good", "Also good"]
    assert [i["title"] for i in json.loads(files["feed.json"])["items"]] == ["Good", "Also good"]
    assert render_feeds(site, [good, bad], ["rss"]) == render_feeds_checked(site, [good], ["rss"])[0]


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",))), st.text(st.characters(blacklist_categories=("Cs",))))
def test_the_json_feed_is_what_the_standard_library_writes(title: str, html: str) -> None:
    """orjson writes the JSON Feed: the bytes are those of json.dumps(ensure_ascii=False, indent=2) and a
    newline, for any text (controls, quotes, backslashes, U+2028, astral characters)."""
    with tempfile.TemporaryDirectory() as empty:  # the built-in settings: no publisher.toml there
        site = load_settings(None, Path(empty)).site
    files, problems = render_feeds_checked(site, [article("a", title or "T", html)], ["json"])
    assert problems == []
    data = files["feed.json"]
    assert data == (json.dumps(json.loads(data.decode("utf-8")), ensure_ascii=False, indent=2) + "\n").encode()


def test_a_lone_surrogate_is_left_out_of_the_json_feed_too(tmp_path: Path) -> None:
    site = load_settings(None, tmp_path).site
    files, problems = render_feeds_checked(site, [article("good", "Good"), article("bad", "B", "<p>\ud800</p>")],
                                           ["json"])
    assert [p.path for p in problems] == ["bad.md"] and "surrogates not allowed" in problems[0].message
    assert [i["title"] for i in json.loads(files["feed.json"])["items"]] == ["Good"]


def test_an_unrenderable_article_beside_good_ones_still_publishes_the_feeds(site: Site) -> None:
    site.write("good.md", "---\ntitle: Good\ndate: 2026-11-01\n---\nText.\n")
    site.write("bad.md", '---\ntitle: "A\\x01B"\nsummary: "s\\a"\ndate: 2026-11-02\n---\n<p>&#x1;</p>\n')
    result = site.publish()
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr
    for name in ("rss.xml", "atom.xml"):
        parsed = feedparser.parse((site.feeds / name).read_bytes())
        assert parsed.bozo == 0 and "Good" in [e.title for e in parsed.entries]
    if result.returncode == 1:
        assert "bad.md" in result.stderr
