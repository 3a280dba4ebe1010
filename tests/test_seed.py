"""The seed article's known answers, through the real parser and the real feeds."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import feedparser

from publisher.config import SiteSettings
from publisher.enrich import enrich
from publisher.load import EXTENSIONS, read, scan_checked, text
from publisher.load.source import decode
from tests.conftest import SEED, Site

TITLE = "Drone Attacks and Putin’s Regime: Impact and Implications"
HEADINGS = [
    "Symbolism in the Drone Attacks",
    "The Evolving Conflict and Stalemate",
    "Putin’s Defensive War Narrative",
    "Implications for Putin’s Regime",
]
REFERENCE = "African Leaders Make Passionate Plea for Peace to Putin Amidst Ukraine Conflict"
BOILERPLATE = ("Also Read", "thought on", "Leave a Comment")


def parse_seed() -> text.Document:
    body, warnings = decode(SEED.name, SEED.read_bytes())
    assert warnings == []
    return text.parse(SEED.name, body, ZoneInfo("UTC"), warnings)


def test_seed_title_headings_paragraphs_and_reference() -> None:
    doc = parse_seed()
    assert doc.title == TITLE
    assert re.findall(r"<h2>(.*?)</h2>", doc.body_html) == HEADINGS
    assert len(re.findall(r"<p>", doc.body_html)) == 14
    assert doc.references == (REFERENCE,)


def test_seed_boilerplate_is_gone_and_quotes_survive() -> None:
    doc = parse_seed()
    for phrase in (*BOILERPLATE, REFERENCE):
        assert phrase not in doc.body_html
    assert "‘People’s War,’" in doc.body_html


def test_seed_in_every_feed(seed_site: Site) -> None:
    result = seed_site.publish()
    assert result.returncode == 0, result.stderr
    feeds = seed_site.feed_bytes()
    assert {"rss.xml", "atom.xml", "feed.json", "index.html", "digests/latest.html"} <= set(feeds)
    for name, data in feeds.items():
        decoded = data.decode("utf-8")
        for phrase in BOILERPLATE:
            assert phrase not in decoded, (name, phrase)
        assert TITLE in decoded, name
    for name in ("rss.xml", "atom.xml"):
        parsed = feedparser.parse(feeds[name])
        assert parsed.bozo == 0
        (entry,) = parsed.entries
        assert entry.title == TITLE
        html = entry.content[0].value
        assert re.findall(r"<h2>(.*?)</h2>", html) == HEADINGS
        assert html.count("<p>") == 14
    item = json.loads(feeds["feed.json"])["items"][0]
    assert item["title"] == TITLE and item["content_html"].count("<h2>") == 4


def test_crlf_and_bom_give_the_same_article(site: Site) -> None:
    raw = SEED.read_bytes()
    crlf = b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n")
    lf_body, _ = decode("a.txt", raw)
    crlf_body, _ = decode("b.txt", crlf)
    tz = ZoneInfo("UTC")
    a, b = text.parse("a.txt", lf_body, tz, []), text.parse("b.txt", crlf_body, tz, [])
    assert (a.title, a.body_html, a.references, a.content_hash) == (b.title, b.body_html, b.references,
                                                                     b.content_hash)


def test_seed_through_the_load_boundary_keeps_its_answers(tmp_path: Path) -> None:
    """The real scan, `load.read` (normalise) and `enrich`: the same title, headings, paragraphs and
    reference, no warning, and the boilerplate still gone."""
    folder = tmp_path / "articles"
    folder.mkdir()
    shutil.copy(SEED, folder / SEED.name)
    (source,), problems = scan_checked(folder, EXTENSIONS)
    assert problems == []
    doc = read(source, ZoneInfo("UTC"))
    assert doc.warnings == ()
    assert (doc.title, doc.references) == (TITLE, (REFERENCE,))
    site = SiteSettings(title="T", url="https://example.com/", description="", language="en", author="",
                        timezone="UTC", permalink="{slug}/")
    entry, html = enrich(doc, site)
    assert entry.title == TITLE and entry.references == (REFERENCE,)
    assert re.findall(r"<h2>(.*?)</h2>", html) == HEADINGS
    assert html.count("<p>") == 14
    for phrase in BOILERPLATE:
        assert phrase not in html
