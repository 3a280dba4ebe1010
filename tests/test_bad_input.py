"""Bad input: every bad file gets a one-line error naming it (and its line), the good articles are still
published with the ids they already had, and the state database and the existing feeds stay intact.

Each test first publishes a good site (the seed article and one Markdown article), then adds the bad
input and publishes again through the real CLI, then reads the real feeds (feedparser, json) and the
real SQLite state file.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest

from tests.conftest import Site

GOOD_MD = """\
---
title: A Good Article
date: 2026-10-01
tags: [tests, good]
---
This article is fine and must survive every bad neighbour.

It has a second paragraph, too.
"""

# error: <file>[:<line>]: <message>; <hint>
ERROR_LINE = re.compile(r"^error: (?P<file>.+?)(?::(?P<line>\d+))?: (?P<message>.+?); (?P<hint>\S.*)$")
WARNING_LINE = re.compile(r"^warning: (?P<file>.+?)(?::(?P<line>\d+))?: (?P<message>.+)$")
FEED_FILES = ("rss.xml", "atom.xml", "feed.json")


# --------------------------------------------------------------------------- helpers


@dataclass
class Feeds:
    """title -> id, and title -> content, per format."""

    ids: dict[str, dict[str, str]]
    content: dict[str, dict[str, str]]

    def titles(self, fmt: str) -> set[str]:
        return set(self.ids[fmt])


@dataclass
class Baseline:
    site: Site
    feeds: Feeds
    feed_bytes: dict[str, bytes]
    db_rows: set[tuple[str, str, str]]


def read_feeds(site: Site) -> Feeds:
    """Parse the three feeds: the XML ones with feedparser (bozo must be 0), the JSON one with json."""
    ids: dict[str, dict[str, str]] = {}
    content: dict[str, dict[str, str]] = {}
    for fmt, name in (("rss", "rss.xml"), ("atom", "atom.xml")):
        parsed = feedparser.parse((site.feeds / name).read_bytes())
        assert parsed.bozo == 0, f"{name} is not well-formed: {parsed.get('bozo_exception')!r}"
        assert parsed.version, f"{name} was not recognised as a feed"
        ids[fmt] = {e.title: e.id for e in parsed.entries}
        assert len(ids[fmt]) == len(parsed.entries), f"duplicate titles in {name}"
        content[fmt] = {e.title: "".join(c.value for c in e.get("content", [])) or e.get("summary", "")
                        for e in parsed.entries}
    data = json.loads((site.feeds / "feed.json").read_bytes().decode("utf-8"))
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    ids["json"] = {item["title"]: item["id"] for item in data["items"]}
    assert len(ids["json"]) == len(data["items"]), "duplicate titles in feed.json"
    content["json"] = {item["title"]: item.get("content_html", "") for item in data["items"]}
    return Feeds(ids, content)


def db_rows(site: Site) -> set[tuple[str, str, str]]:
    """(slug, id, source) of every article in the state; the file must open and pass an integrity check."""
    assert site.state.is_file(), "state database missing"
    conn = sqlite3.connect(f"file:{site.state}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return set(conn.execute("SELECT slug, id, source FROM articles").fetchall())
    finally:
        conn.close()


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The non-empty stderr lines; never a traceback, and every line is an error or a warning."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    for line in lines:
        assert line.startswith(("error: ", "warning: ")), f"stray stderr line (not one-line?): {line!r}"
    return lines


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in stderr_lines(result) if line.startswith("error: ")]


def assert_one_error(result: subprocess.CompletedProcess[str], file: str, line: int | None = None,
                     code: int = 1) -> re.Match[str]:
    """Exactly one error line, in the form `error: <file>[:<line>]: <message>; <hint>`, naming `file`."""
    assert result.returncode == code, (result.returncode, result.stderr)
    errors = error_lines(result)
    assert len(errors) == 1, f"expected one error line, got {errors!r}"
    match = ERROR_LINE.match(errors[0])
    assert match, f"error line not in the form 'error: <file>[:<line>]: <message>; <hint>': {errors[0]!r}"
    assert match["file"] == file, f"error names {match['file']!r}, not {file!r}: {errors[0]!r}"
    if line is not None:
        assert match["line"] == str(line), f"error should name line {line}: {errors[0]!r}"
    return match


def publish_good(site: Site) -> Baseline:
    """Publish a good site and remember what it produced."""
    site.write("good.md", GOOD_MD)
    result = site.publish()
    assert result.returncode == 0, result.stderr
    assert error_lines(result) == []
    feeds = read_feeds(site)
    assert "A Good Article" in feeds.titles("rss")
    assert len(feeds.ids["rss"]) == 2
    assert feeds.ids["rss"] == feeds.ids["atom"] == feeds.ids["json"]
    return Baseline(site, feeds, site.feed_bytes(), db_rows(site))


def assert_good_intact(base: Baseline) -> Feeds:
    """Every good article is still in every feed with the same id, and the state still holds them."""
    feeds = read_feeds(base.site)
    for fmt, before in base.feeds.ids.items():
        for title, ident in before.items():
            assert feeds.ids[fmt].get(title) == ident, f"{fmt}: {title!r} lost or changed its id"
    assert base.db_rows <= db_rows(base.site), "state database lost or changed good articles"
    return feeds


def assert_feeds_unchanged(base: Baseline) -> None:
    """A bad file changes nothing: the feeds are byte for byte those of the good run."""
    assert_good_intact(base)
    assert base.site.feed_bytes() == base.feed_bytes
    assert db_rows(base.site) == base.db_rows


@pytest.fixture
def base(seed_site: Site) -> Baseline:
    return publish_good(seed_site)


# --------------------------------------------------------------------------- unreadable files


@pytest.mark.parametrize(("name", "data"), [
    ("empty.txt", b""),
    ("empty.md", b""),
    ("blank.txt", b"   \n\t\n  \r\n\n"),
    ("blank.md", b"\n\n   \n"),
], ids=["empty-txt", "empty-md", "whitespace-txt", "whitespace-md"])
def test_empty_or_whitespace_file_is_one_error(base: Baseline, name: str, data: bytes) -> None:
    base.site.write(name, data)
    result = base.site.publish()
    assert_one_error(result, name)
    assert_feeds_unchanged(base)


def test_binary_file_is_one_error(base: Baseline) -> None:
    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"
           b"\x1f\xf3\xffa\x00\x00\x00\x00IEND\xaeB`\x82" * 20)
    base.site.write("x.txt", png)
    result = base.site.publish()
    match = assert_one_error(result, "x.txt")
    assert "binary" in match["message"].lower()
    assert_feeds_unchanged(base)


def test_invalid_utf8_names_the_line(base: Baseline) -> None:
    base.site.write("latin1.txt", "Café Title\n\nA fine first paragraph.\n\nNaïve text\n".encode("latin-1"))
    # line 1 holds the first bad byte (the é of Café)
    result = base.site.publish()
    match = assert_one_error(result, "latin1.txt", line=1)
    assert "utf-8" in match["message"].lower()
    assert_feeds_unchanged(base)


def test_invalid_utf8_later_line_is_named(base: Baseline) -> None:
    base.site.write("later.txt", b"Plain Title\n\nGood paragraph.\n\nBad \xff byte on line five.\n")
    result = base.site.publish()
    assert_one_error(result, "later.txt", line=5)
    assert_feeds_unchanged(base)


def test_text_without_title_is_one_error(base: Baseline) -> None:
    first = "This first line runs on and on " * 10  # over 200 characters: a paragraph, not a title
    assert len(first.strip()) > 200
    base.site.write("untitled.txt", first.strip() + "\n\nSecond paragraph.\n")
    result = base.site.publish()
    match = assert_one_error(result, "untitled.txt", line=1)
    assert "title" in match["message"].lower()
    assert_feeds_unchanged(base)


# --------------------------------------------------------------------------- front matter


def test_broken_yaml_names_the_line(base: Baseline) -> None:
    base.site.write("broken.md", "---\ndate: 2026-10-02\ntitle: Hello: world\n---\nBody text.\n")
    result = base.site.publish()
    match = assert_one_error(result, "broken.md", line=3)
    assert "front matter" in match["message"]
    assert_feeds_unchanged(base)


def test_front_matter_that_is_a_list_is_one_error(base: Baseline) -> None:
    base.site.write("list.md", "---\n- title\n- date\n---\nBody text.\n")
    result = base.site.publish()
    match = assert_one_error(result, "list.md", line=2)
    assert "mapping" in match["message"]
    assert_feeds_unchanged(base)


def test_unclosed_front_matter_is_one_error(base: Baseline) -> None:
    base.site.write("open.md", "---\ntitle: Never Closed\n\nBody text that never ends the header.\n")
    result = base.site.publish()
    match = assert_one_error(result, "open.md", line=1)
    assert "not closed" in match["message"]
    assert_feeds_unchanged(base)


def test_wrong_date_names_the_front_matter_line(base: Baseline) -> None:
    base.site.write("dated.md", "---\ntitle: Badly Dated\ndate: 2026-13-45\n---\nBody text.\n")
    result = base.site.publish()
    match = assert_one_error(result, "dated.md", line=3)
    assert "2026-13-45" in match["message"]
    assert "date" in match["message"]
    assert_feeds_unchanged(base)


def test_draft_maybe_is_an_error(base: Baseline) -> None:
    base.site.write("maybe.md", "---\ntitle: Perhaps\ndraft: maybe\n---\nBody text.\n")
    result = base.site.publish()
    match = assert_one_error(result, "maybe.md", line=3)
    assert "draft" in match["message"]
    assert_feeds_unchanged(base)
    assert "Perhaps" not in read_feeds(base.site).titles("rss")


def test_draft_no_publishes_the_article(base: Baseline) -> None:
    base.site.write("no.md", "---\ntitle: Not A Draft\ndraft: no\n---\nPublished on purpose.\n")
    result = base.site.publish()
    assert result.returncode == 0, result.stderr
    assert error_lines(result) == []
    feeds = assert_good_intact(base)
    for fmt in ("rss", "atom", "json"):
        assert "Not A Draft" in feeds.titles(fmt), fmt


def test_guid_0123_stays_a_string(base: Baseline) -> None:
    base.site.write("guid.md", "---\ntitle: Octal Trap\nguid: 0123\n---\nThe id must stay 0123.\n")
    result = base.site.publish()
    assert result.returncode == 0, result.stderr
    assert error_lines(result) == []
    feeds = assert_good_intact(base)
    assert feeds.ids["rss"]["Octal Trap"] == "0123"  # RSS <guid>
    atom_id = feeds.ids["atom"]["Octal Trap"]  # Atom's <id> must be a URI: a tag: URI that keeps the guid
    assert atom_id.startswith("tag:") and atom_id.endswith(":0123"), atom_id
    assert feeds.ids["json"]["Octal Trap"] == "0123"
    assert ("guid", "0123", "guid.md") in db_rows(base.site)  # the state keeps it exactly, too


# --------------------------------------------------------------------------- slugs


def test_duplicate_slug_names_both_files(base: Baseline) -> None:
    base.site.write("alpha.md", "---\ntitle: Alpha\nslug: same\n---\nFirst of two.\n")
    base.site.write("beta.md", "---\ntitle: Beta\nslug: same\n---\nSecond of two.\n")
    result = base.site.publish()
    assert result.returncode == 1, result.stderr
    errors = error_lines(result)
    assert len(errors) == 1, errors
    assert ERROR_LINE.match(errors[0]), errors[0]
    assert "alpha.md" in errors[0] and "beta.md" in errors[0], errors[0]
    feeds = assert_good_intact(base)
    for fmt in ("rss", "atom", "json"):
        assert len({"Alpha", "Beta"} & feeds.titles(fmt)) == 1, (fmt, feeds.titles(fmt))
    slugs = [row for row in db_rows(base.site) if row[0] == "same"]
    assert len(slugs) == 1


def _tree(root: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def test_slug_with_dot_dot_is_refused(base: Baseline, tmp_path: Path) -> None:
    site = base.site
    site.write("evil.md", "---\ntitle: Evil\nslug: ../../x\n---\nTries to escape.\n")
    before = _tree(tmp_path)
    result = site.publish()
    assert_one_error(result, "evil.md", line=3)
    after = _tree(tmp_path)
    changed = {p for p in after if before.get(p) != after[p]}
    allowed = {p for p in changed if p.is_relative_to(site.feeds) or p.name.startswith(site.state.name)}
    assert changed == allowed, f"written outside the output folder: {sorted(changed - allowed)}"
    for place in (site.feeds / "../../x", site.feeds / "../x", site.root / "x", tmp_path / "x"):
        assert not place.exists(), place
    assert_feeds_unchanged(base)
    assert "Evil" not in read_feeds(site).titles("rss")


# --------------------------------------------------------------------------- content that is cleaned


def test_xml_illegal_control_characters_are_removed_with_a_warning(base: Baseline) -> None:
    site = base.site
    site.write("ctrl.txt", b"Control Title\n\nA paragraph with a bad\x01 character.\n\nAnd a vertical\x0b tab.\n")
    result = site.publish()
    assert result.returncode == 0, result.stderr
    lines = stderr_lines(result)
    assert error_lines(result) == []
    warnings = [WARNING_LINE.match(line) for line in lines if line.startswith("warning: ")]
    ours = [w for w in warnings if w and w["file"] == "ctrl.txt"]
    assert len(ours) == 1, lines
    assert ours[0]["line"] == "3", lines
    feeds = assert_good_intact(base)  # bozo == 0 for both XML feeds
    for fmt in ("rss", "atom", "json"):
        assert "Control Title" in feeds.titles(fmt), fmt
        assert "a bad character" in feeds.content[fmt]["Control Title"], fmt
    for name, data in site.feed_bytes().items():
        assert b"\x01" not in data and b"\x0b" not in data, name
        assert b"&#1;" not in data and b"&#11;" not in data and b"\\u0001" not in data, name


# file -> (front matter line 2, the title every feed must show); each hostile value sits on line 2
HOSTILE = {
    "x01.md": (r'title: "Ctl A\x01B"', "Ctl AB"),
    "bell.md": (r'summary: "s\a"' "\ntitle: Bell Summary", "Bell Summary"),
    "nul.md": (r'author: "a\0"' "\ntitle: Nul Author", "Nul Author"),
    "bad-tag.md": (r'tags: ["t\x01"]' "\ntitle: Bad Tag", "Bad Tag"),  # not tags.md: 'tags' is a reserved slug
    "uffff.md": (r'title: "Non A\uffff"', "Non A"),
    "esc.md": (r'title: "Esc A\e"', "Esc A"),
    "surrogate.md": (r'title: "Lone A\ud800"', "Lone A"),
    "markup.md": ('title: "Cross-site <script>alert(1)</script> test"', "Cross-site alert(1) test"),
    "att.md": ('title: "AT&T says 1 < 2"', "AT&T says 1 < 2"),
    "image.md": ("image: 'https://x/\" onerror=\"alert(1)'\ntitle: Hostile Image", "Hostile Image"),
}


def test_hostile_values_are_cleaned_and_every_article_published(base: Baseline) -> None:
    """YAML escapes that decode to characters XML forbids, markup in titles, a hostile image URL and
    character references in raw HTML, side by side: each article is published clean, each warning
    names its file and line, and every feed parses (bozo 0) with no forbidden character in it."""
    site = base.site
    for name, (head, _) in HOSTILE.items():
        site.write(name, f"---\n{head}\n---\nBody of {name}.\n")
    site.write("refs.md", "---\ntitle: Refs\n---\nFirst.\n\n<p>a&#x1;b &#xD800; &#0; &#xFFFF;c</p>\n")
    result = site.publish()
    assert result.returncode == 0, result.stderr
    warned = {(m["file"], m["line"]) for line in stderr_lines(result) if (m := WARNING_LINE.match(line))}
    for name in ("x01.md", "bell.md", "nul.md", "bad-tag.md", "uffff.md", "esc.md", "surrogate.md"):
        assert (name, "2") in warned, (name, result.stderr)
    assert ("refs.md", "6") in warned, result.stderr
    feeds = assert_good_intact(base)
    for fmt in ("rss", "atom", "json"):
        assert {title for _, title in HOSTILE.values()} | {"Refs"} <= feeds.titles(fmt), fmt
    for name, data in site.feed_bytes().items():
        text = data.decode("utf-8")  # strict: no lone surrogate got through
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", text), name
        for ref in re.findall(r"&#(?:x[0-9a-f]+|[0-9]+);", text, re.I):
            assert html.unescape(ref) not in ("", "\ufffd"), (name, ref)
        assert "onerror=" not in html.unescape(text).replace("%22%20onerror=%22", ""), name
    rss = (site.feeds / "rss.xml").read_text(encoding="utf-8")
    assert 'url="https://x/%22%20onerror=%22alert(1)"' in rss


UNSAFE = {
    "script": "<script>alert(1)</script>",
    "onerror": "<img src=x onerror=alert(1)>",
    "javascript-link": "[x](javascript:alert(1))",
}


JSON_LD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


def without_json_ld(name: str, text: str) -> str:
    """An article page's one script is its JSON-LD data (never run): it must parse as JSON and hold no
    '<' that could end it or open a tag; the rest of the page is then checked like any output."""
    if not name.endswith("/index.html"):
        return text
    blocks = JSON_LD.findall(text)
    assert len(blocks) == 1, f"{name}: one JSON-LD block expected, found {len(blocks)}"
    assert "<" not in blocks[0] and json.loads(blocks[0])["@type"] == "Article", name
    return JSON_LD.sub("", text)


@pytest.mark.parametrize("payload", list(UNSAFE.values()), ids=list(UNSAFE))
def test_unsafe_markdown_is_published_without_the_danger(base: Baseline, payload: str) -> None:
    site = base.site
    site.write("unsafe.md", f"---\ntitle: Unsafe Input\n---\nBefore the payload.\n\n{payload}\n\nAfter it.\n")
    result = site.publish()
    assert result.returncode == 0, result.stderr
    lines = stderr_lines(result)
    assert error_lines(result) == []
    warnings = [WARNING_LINE.match(line) for line in lines if line.startswith("warning: ")]
    assert any(w and w["file"] == "unsafe.md" for w in warnings), f"no warning naming unsafe.md: {lines}"
    feeds = assert_good_intact(base)
    for fmt in ("rss", "atom", "json"):
        assert "Unsafe Input" in feeds.titles(fmt), fmt
    for name, data in site.feed_bytes().items():
        text = without_json_ld(name, data.decode("utf-8"))
        # look at the bytes as written and once unescaped (the XML feeds carry the HTML escaped)
        for view in (text, html.unescape(text)):
            low = view.lower()
            for needle in ("<script", "onerror", "javascript:"):
                assert needle not in low, f"{needle!r} in {name}"


# --------------------------------------------------------------------------- size


def test_fifty_megabyte_article_is_refused(base: Baseline) -> None:
    site = base.site
    paragraph = b"All work and no play makes a very long article indeed. " * 40 + b"\n\n"
    size = 50 * 2**20
    path = site.articles / "huge.txt"
    with path.open("wb") as handle:
        handle.write(b"Huge Title\n\n")
        handle.write(paragraph * (size // len(paragraph) + 1))
    assert path.stat().st_size > size
    result = site.publish()
    match = assert_one_error(result, "huge.txt")
    message = match["message"]
    assert "limit" in message and re.search(r"\d+ ?MB", message), message
    assert_feeds_unchanged(base)
    assert "Huge Title" not in read_feeds(site).titles("rss")


# --------------------------------------------------------------------------- folder and config


def test_missing_articles_folder_exit_2(base: Baseline) -> None:
    site = base.site
    site.articles.rename(site.root / "articles-moved")
    result = site.publish()
    assert result.returncode == 2, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert str(site.articles.resolve()) in lines[0] or str(site.articles) in lines[0], lines[0]
    assert_feeds_unchanged(base)


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(toml: str) -> str:
        assert old in toml, f"{old!r} not in the fixture's publisher.toml"
        return toml.replace(old, new)

    return edit


CONFIG_CASES: dict[str, tuple[Callable[[str], str], tuple[str, ...]]] = {
    "typo-key": (_replace('title = "Test Site"', 'title = "Test Site"\ntitel = "x"'), ("titel", "'title'")),
    "wrong-type": (lambda toml: toml + '\n[feeds]\nlimit = "ten"\n', ("limit",)),
    "bad-url": (_replace('url = "https://example.com/"', 'url = "example.com"'), ("url",)),
    "bad-timezone": (_replace('timezone = "UTC"', 'timezone = "Mars/Olympus_Mons"'), ("timezone",)),
}


@pytest.mark.parametrize(("edit", "expected"), list(CONFIG_CASES.values()), ids=list(CONFIG_CASES))
def test_config_error_is_one_line_exit_2(base: Baseline, edit: Callable[[str], str],
                                         expected: tuple[str, ...]) -> None:
    site = base.site
    config = site.root / "publisher.toml"
    config.write_text(edit(config.read_text(encoding="utf-8")), encoding="utf-8")
    result = site.publish()
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: "), line
    assert "publisher.toml" in line, line
    for word in expected:
        assert word in line, f"{word!r} not in {line!r}"
    assert_feeds_unchanged(base)
