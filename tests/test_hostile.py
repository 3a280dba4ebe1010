"""Hostile articles (issue 9), each beside two good ones, through the real CLI in a subprocess.

Every case asserts the same promises: no traceback; the exit code the issue asks for (0 with a
warning naming the file where a value is cleaned, 1 with an `error:` line naming the file where the
article is refused); the two good articles are in all three feeds; the XML feeds parse with
feedparser (bozo 0) and feed.json with json; no output file holds an XML-illegal character (raw or as
a numeric reference), a `media:group`, a URL attribute that is not a URI, a `<script` in a title,
an Atom id that is not a full URI, a whitespace-only JSON content_html, or the content of a file
outside the articles folder.

The output checks (`check_outputs`) are shared with tests/test_properties.py.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from tests.conftest import Site

SECRET = "root:x:0:0:root:/root:/bin/bash"
GOOD = {
    "good.md": "---\ntitle: A Good Article\ndate: 2026-10-01\ntags: [good]\n---\nThis article is fine.\n\n"
               "It has a second paragraph, too.\n",
    "plain.txt": "Plain Good Title\n\nA plain text article that is fine.\n\nAnother paragraph of it.\n",
}
GOOD_TITLES = ("A Good Article", "Plain Good Title")
FEED_FILES = ("rss.xml", "atom.xml", "feed.json")
ERROR_LINE = re.compile(r"^error: (?P<file>.+?)(?::(?P<line>\d+))?: (?P<message>.+)$")
WARNING_LINE = re.compile(r"^warning: (?P<file>.+?)(?::(?P<line>\d+))?: (?P<message>.+)$")
# XML 1.0 Char production, negated: what may never appear in an XML document (nor in our JSON or HTML).
XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
FULL_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
ATOM = "{http://www.w3.org/2005/Atom}"
CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
URL_ATTRIBUTES = ("url", "href", "src", "uri")
JSON_URL_KEYS = ("url", "external_url", "image", "banner_image", "home_page_url", "feed_url", "icon", "favicon")


# --------------------------------------------------------------------------- what a reader sees


@dataclass
class Item:
    title: str
    id: str
    link: str
    content: str


@dataclass
class Feeds:
    """Items per feed format ('rss', 'atom', 'json') and the raw JSON items."""

    items: dict[str, list[Item]]
    json_items: list[dict[str, Any]] = field(default_factory=list)

    def titles(self, fmt: str) -> list[str]:
        return [item.title for item in self.items[fmt]]


def read_feeds(feeds: Path) -> Feeds:
    """The three feeds as readers parse them: feedparser for RSS and Atom (bozo 0), json for JSON Feed."""
    items: dict[str, list[Item]] = {}
    for fmt, name, version in (("rss", "rss.xml", "rss"), ("atom", "atom.xml", "atom")):
        parsed = feedparser.parse((feeds / name).read_bytes())
        assert parsed.bozo == 0, f"{name} is not well-formed: {parsed.get('bozo_exception')!r}"
        assert str(parsed.version).startswith(version), f"{name} read as {parsed.version!r}"
        items[fmt] = [Item(e.get("title", ""), e.get("id", ""), e.get("link", ""),
                           "".join(c.value for c in e.get("content", [])) or e.get("summary", ""))
                      for e in parsed.entries]
    data = json.loads((feeds / "feed.json").read_bytes().decode("utf-8"))
    assert data["version"] == "https://jsonfeed.org/version/1.1"
    items["json"] = [Item(i.get("title", ""), i["id"], i.get("url", ""), i.get("content_html", ""))
                     for i in data["items"]]
    return Feeds(items, data["items"])


def _strings(value: Any) -> Iterator[str]:
    """Every string (keys too) inside decoded JSON."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


def _legal_refs(text: str, where: str) -> None:
    """No numeric character reference names a character XML forbids (&#x1;, &#xD800;, &#0; ...)."""
    for match in CHAR_REF.finditer(text):
        code = int(match[1], 16) if match[1] else int(match[2])
        assert code <= 0x10FFFF and not XML_ILLEGAL.match(chr(code)), f"{where}: reference {match[0]!r}"


def _legal_text(text: str, where: str) -> None:
    bad = XML_ILLEGAL.search(text)
    assert bad is None, f"{where}: XML-illegal character U+{ord(bad.group()):04X} at {bad.start()}"


def _html_in_xml(root: Any) -> Iterator[str]:
    """The HTML that RSS (description, content:encoded) and Atom (type="html") carry as escaped text."""
    for element in root.iter():
        if not isinstance(element.tag, str) or not element.text:
            continue
        name = etree.QName(element).localname
        if name in ("description", "encoded") or (name in ("content", "summary") and element.get("type") == "html"):
            yield element.text


def _uri_ok(value: str) -> bool:
    """A URI as RFC 3986 allows it in an attribute: ASCII, no space, quote or angle bracket."""
    return value.isascii() and not re.search(r"[\s\"<>\\^`{|}]", value) and "<script" not in value.lower()


def _check_xml(data: bytes, name: str) -> None:
    """URL attributes are URIs; the HTML inside refers to no XML-illegal character (&#x1;, &#xD800;)."""
    root = etree.fromstring(data)
    for html in _html_in_xml(root):
        _legal_refs(html, f"{name} (HTML inside)")
    for element in root.iter():
        for attr, value in element.attrib.items():
            if etree.QName(attr).localname in URL_ATTRIBUTES:
                assert _uri_ok(value), f"{name}: <{etree.QName(element).localname} {attr}={value!r}> is not a URI"
        if etree.QName(element).localname == "link" and element.text and element.text.strip():
            assert _uri_ok(element.text.strip()), f"{name}: <link>{element.text!r}</link> is not a URI"


def _check_atom_ids(data: bytes) -> None:
    """Atom ids are full URIs (RFC 4287 4.2.6; the W3C validator's InvalidFullLink error otherwise)."""
    root = etree.fromstring(data)
    for element in root.iter(f"{ATOM}id"):
        ident = (element.text or "").strip()
        assert FULL_URI.match(ident) and _uri_ok(ident), f"atom.xml: <id>{ident!r}</id> is not a full URI"


def _check_json(data: bytes) -> None:
    feed = json.loads(data.decode("utf-8"))
    for text in _strings(feed):
        _legal_text(text, "feed.json (decoded)")
    for thing in [feed, *feed["items"]]:
        for key in JSON_URL_KEYS:
            if key in thing:
                assert _uri_ok(thing[key]), f"feed.json: {key} {thing[key]!r} is not a URI"
    for item in feed["items"]:
        assert "content_html" in item or "content_text" in item, f"feed.json: item {item['id']!r} has no content"
        _legal_refs(item.get("content_html", ""), "feed.json content_html")
        if "content_html" in item:
            assert item["content_html"].strip(), f"feed.json: item {item['id']!r} has whitespace-only content_html"
        assert "<script" not in item.get("title", "").lower(), f"feed.json: title {item['title']!r}"


def check_outputs(feeds: Path, secret: str = SECRET) -> Feeds:
    """Every output file is clean UTF-8 text with only XML-legal characters; feeds parse; URLs are URIs;
    no media:group; no '<script' in a title; no whitespace-only content; the secret appears nowhere."""
    for name in FEED_FILES:
        assert (feeds / name).is_file(), f"{name} was not written"
    for path in sorted(p for p in feeds.rglob("*") if p.is_file()):
        name = path.relative_to(feeds).as_posix()
        data = path.read_bytes()
        text = data.decode("utf-8")  # strict: a lone surrogate or a Latin-1 byte fails here
        _legal_text(text, name)
        if name.endswith((".xml", ".html")):  # numeric references are markup here (in .txt and .json, text)
            _legal_refs(text, name)
        assert secret not in text, f"{name} holds the content of a file outside the articles folder"
        if name in ("rss.xml", "atom.xml"):
            assert "media:group" not in text, f"{name}: media:group (the W3C validator wants media:content)"
            _check_xml(data, name)
        if name == "atom.xml":
            _check_atom_ids(data)
    _check_json((feeds / "feed.json").read_bytes())
    found = read_feeds(feeds)
    for fmt, items in found.items.items():
        for item in items:
            assert "<script" not in item.title.lower(), f"{fmt}: title {item.title!r} keeps markup"
            assert _uri_ok(item.link), f"{fmt}: link {item.link!r} is not a URI"
        assert len({i.id for i in items}) == len(items), f"{fmt}: two items share an id"
    return found


# --------------------------------------------------------------------------- what the CLI says


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Never a traceback; every stderr line is one `error:` or `warning:` line."""
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    for line in lines:
        assert line.startswith(("error: ", "warning: ")), f"stray stderr line (not one line?): {line!r}"
    return lines


def lines_naming(result: subprocess.CompletedProcess[str], pattern: re.Pattern[str],
                 file: str) -> list[re.Match[str]]:
    """The error or warning lines whose file is `file` (or a file inside the folder `file`)."""
    found = [pattern.match(line) for line in stderr_lines(result)]
    return [m for m in found if m and (m["file"] == file or m["file"].startswith(file + "/"))]


def publish(site: Site) -> subprocess.CompletedProcess[str]:
    result = site.publish("--no-send")
    print(result.stdout, result.stderr)  # shown by pytest when the test fails
    return result


def feeds_with_good(site: Site) -> Feeds:
    found = check_outputs(site.feeds)
    for fmt in ("rss", "atom", "json"):
        titles = found.titles(fmt)
        for title in GOOD_TITLES:
            assert titles.count(title) == 1, f"{fmt}: good article {title!r} missing or doubled: {titles}"
    return found


def json_item(found: Feeds, title: Callable[[str], bool]) -> dict[str, Any]:
    """The one JSON Feed item whose title satisfies `title`, also present in RSS and Atom."""
    for fmt in ("rss", "atom"):
        assert sum(map(title, found.titles(fmt))) == 1, f"{fmt}: {found.titles(fmt)}"
    hits = [item for item in found.json_items if title(item.get("title", ""))]
    assert len(hits) == 1, [i.get("title") for i in found.json_items]
    return hits[0]


def cleaned(expected: str) -> Callable[[str], bool]:
    """A title cleaned to `expected` (a bad character dropped, or replaced by U+FFFD)."""
    return lambda title: title.replace("\ufffd", "") == expected


@pytest.fixture
def good_site(site: Site) -> Site:
    for name, text in GOOD.items():
        site.write(name, text)
    return site


# --------------------------------------------------------------------------- cleaned: exit 0 and a warning


@dataclass(frozen=True)
class Cleaned:
    front: str  # the front matter line under test (line 2 of the file)
    title: str  # the article's title once cleaned
    field: str = ""  # a JSON Feed field to check: summary, author, tags
    value: Any = None  # its cleaned value


CLEANED = {
    "title-x01": Cleaned(r'title: "A\x01B"', "AB"),
    "summary-bell": Cleaned(r'summary: "s\a"', "Summary Case", "summary", "s"),
    "author-nul": Cleaned(r'author: "a\0"', "Author Case", "author", "a"),
    "tags-x01": Cleaned(r'tags: ["t\x01"]', "Tags Case", "tags", ["t"]),
    "title-uffff": Cleaned(r'title: "A\uffff"', "A"),
    "title-esc": Cleaned(r'title: "A\e"', "A"),
    "title-lone-surrogate": Cleaned(r'title: "A\ud800"', "A"),
}


def _field(item: dict[str, Any], name: str) -> Any:
    if name == "author":
        return next(a["name"] for a in item.get("authors", []))
    return item.get(name)


@pytest.mark.parametrize("case", list(CLEANED.values()), ids=list(CLEANED))
def test_bad_character_in_front_matter_is_cleaned_with_a_warning(good_site: Site, case: Cleaned) -> None:
    title = "" if case.front.startswith("title:") else f"title: {case.title}\n"
    good_site.write("hostile.md", f"---\n{case.front}\n{title}date: 2026-11-01\n---\nA body that is fine.\n")
    result = publish(good_site)
    assert result.returncode == 0, result.stderr
    assert not lines_naming(result, ERROR_LINE, "hostile.md"), result.stderr
    warnings = lines_naming(result, WARNING_LINE, "hostile.md")
    assert warnings, f"no warning names hostile.md: {result.stderr!r}"
    assert any(w["line"] == "2" for w in warnings), f"no warning names line 2: {result.stderr!r}"
    item = json_item(feeds_with_good(good_site), cleaned(case.title))
    if case.field:
        assert _field(item, case.field) == case.value, item


def test_character_reference_to_a_control_character_in_raw_html(good_site: Site) -> None:
    good_site.write("ncr.md", "---\ntitle: Reference Case\n---\nText before.\n\n<p>&#x1;</p>\n\nText after.\n")
    result = publish(good_site)
    assert result.returncode == 0, result.stderr
    assert not lines_naming(result, ERROR_LINE, "ncr.md"), result.stderr
    item = json_item(feeds_with_good(good_site), lambda t: t == "Reference Case")
    assert "Text before." in item["content_html"] and "Text after." in item["content_html"]


# --------------------------------------------------------------------------- refused or isolated


def test_two_articles_with_one_guid_is_an_error_naming_both(good_site: Site) -> None:
    good_site.write("first.md", "---\ntitle: First Claim\nguid: same\n---\nOne of two.\n")
    good_site.write("second.md", "---\ntitle: Second Claim\nguid: same\n---\nTwo of two.\n")
    result = publish(good_site)
    assert result.returncode == 1, result.stderr
    errors = [ERROR_LINE.match(line) for line in stderr_lines(result) if line.startswith("error: ")]
    both = [m for m in errors if m and "first.md" in m[0] and "second.md" in m[0]]
    assert len(both) == 1, f"expected one error naming first.md and second.md: {result.stderr!r}"
    assert "database" not in both[0][0].lower(), both[0][0]
    found = feeds_with_good(good_site)
    for fmt in ("rss", "atom", "json"):
        claims = [t for t in found.titles(fmt) if t in ("First Claim", "Second Claim")]
        assert len(claims) == 1, (fmt, found.titles(fmt))
    assert [i.get("id") for i in found.json_items].count("same") == 1


def test_second_publish_keeps_the_guid_with_the_article_the_state_knows(good_site: Site) -> None:
    good_site.write("zz-first.md", "---\ntitle: Known Claim\nguid: same\n---\nPublished first.\n")
    assert publish(good_site).returncode == 0
    good_site.write("aa-second.md", "---\ntitle: Late Claim\nguid: same\n---\nCame later.\n")
    result = publish(good_site)
    assert result.returncode == 1, result.stderr
    assert lines_naming(result, ERROR_LINE, "aa-second.md") or any(
        "aa-second.md" in line and "zz-first.md" in line for line in stderr_lines(result)), result.stderr
    found = feeds_with_good(good_site)
    for fmt in ("rss", "atom", "json"):
        assert "Known Claim" in found.titles(fmt) and "Late Claim" not in found.titles(fmt), fmt


def test_image_that_is_not_a_url_never_reaches_an_attribute(good_site: Site) -> None:
    good_site.write("image.md", "---\ntitle: Image Case\nimage: 'https://x/\" onerror=\"alert(1)'\n---\nText.\n")
    result = publish(good_site)
    assert result.returncode in (0, 1), result.stderr
    if result.returncode:  # refused: an error names it; else left out with a warning, or percent-encoded
        assert lines_naming(result, ERROR_LINE, "image.md"), f"image.md not named: {result.stderr!r}"
    feeds_with_good(good_site)  # URL attributes are URIs (no quote, space or '<'), no media:group
    for name in ("rss.xml", "atom.xml"):
        text = (good_site.feeds / name).read_text(encoding="utf-8")
        assert "onerror=&quot;" not in text and 'onerror="' not in text, name


def test_good_image_is_media_content_without_media_group(good_site: Site) -> None:
    good_site.write("pic.md", "---\ntitle: Picture Case\nimage: https://example.com/a.png\n---\nText.\n")
    result = publish(good_site)
    assert result.returncode == 0, result.stderr
    item = json_item(feeds_with_good(good_site), lambda t: t == "Picture Case")
    assert item.get("image") == "https://example.com/a.png"
    for name in ("rss.xml", "atom.xml"):
        root = etree.fromstring((good_site.feeds / name).read_bytes())
        urls = [e.get("url") for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname in (
            "content", "enclosure") and e.get("url")]
        assert urls == ["https://example.com/a.png"], (name, urls)


def test_non_ascii_file_name_gives_a_uri_link(good_site: Site) -> None:
    good_site.write("日本語.txt", "Japanese Name\n\nThe file name is not ASCII.\n")
    result = publish(good_site)
    assert result.returncode == 0, result.stderr
    found = feeds_with_good(good_site)  # every link is a URI (checked there)
    links = {fmt: [i.link for i in items if i.title == "Japanese Name"] for fmt, items in found.items.items()}
    assert links["rss"] == links["atom"] == links["json"] and len(links["rss"]) == 1, links
    assert "%E6%97%A5%E6%9C%AC%E8%AA%9E" in links["rss"][0].upper(), links


def test_markup_in_a_title_is_stripped_and_the_text_stays(good_site: Site) -> None:
    good_site.write("xss.md", "---\ntitle: Cross-site <script>alert(1)</script> test\n---\nText.\n")
    result = publish(good_site)
    assert result.returncode == 0, result.stderr
    found = feeds_with_good(good_site)  # no '<script' in any title (checked there)
    for fmt in ("rss", "atom", "json"):
        hits = [t for t in found.titles(fmt) if t.startswith("Cross-site")]
        assert len(hits) == 1 and hits[0].endswith("test") and "<" not in hits[0], (fmt, hits)
    for name in ("rss.xml", "atom.xml", "feed.json"):
        text = (good_site.feeds / name).read_text(encoding="utf-8")
        assert "&lt;script" not in text and "<script" not in text and "\\u003cscript" not in text, name


def test_body_that_sanitises_to_nothing_has_no_blank_content(good_site: Site) -> None:
    good_site.write("empty-body.md", "---\ntitle: Script Only\n---\n<script>alert(1)</script>\n")
    result = publish(good_site)
    assert result.returncode in (0, 1), result.stderr
    named = lines_naming(result, ERROR_LINE if result.returncode else WARNING_LINE, "empty-body.md")
    assert named, f"empty-body.md not named: {result.stderr!r}"
    feeds_with_good(good_site)  # content_html never whitespace-only (checked there)
    for name in FEED_FILES:
        assert "alert(1)" not in (good_site.feeds / name).read_text(encoding="utf-8"), name


# --------------------------------------------------------------------------- files outside the folder


def _outside(site: Site) -> Path:
    outside = site.root.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.md").write_text(f"---\ntitle: Secret\n---\n{SECRET}\n", encoding="utf-8")
    (outside / "passwd").write_text(f"{SECRET}\ndaemon:x:1:1::/usr/sbin:/bin/false\n", encoding="utf-8")
    return outside


def _link_file(site: Site) -> str:
    os.symlink(_outside(site) / "passwd", site.articles / "passwd.txt")
    return "passwd.txt"


def _link_folder(site: Site) -> str:
    os.symlink(_outside(site), site.articles / "elsewhere", target_is_directory=True)
    return "elsewhere"


def _link_relative(site: Site) -> str:
    _outside(site)
    os.symlink("../../outside/secret.md", site.articles / "relative.md")
    assert (site.articles / "relative.md").read_text(encoding="utf-8").startswith("---")
    return "relative.md"


LINKS_OUTSIDE = {"file": _link_file, "folder": _link_folder, "relative": _link_relative}


@pytest.mark.parametrize("make", list(LINKS_OUTSIDE.values()), ids=list(LINKS_OUTSIDE))
def test_symlink_out_of_the_articles_folder_is_refused(good_site: Site, make: Callable[[Site], str]) -> None:
    name = make(good_site)
    result = publish(good_site)
    assert result.returncode == 1, result.stderr
    assert lines_naming(result, ERROR_LINE, name), f"no error names {name}: {result.stderr!r}"
    found = feeds_with_good(good_site)  # the secret is in no output file (checked there)
    for fmt in ("rss", "atom", "json"):
        assert "Secret" not in found.titles(fmt) and len(found.items[fmt]) == 2, (fmt, found.titles(fmt))
    assert SECRET not in result.stdout + result.stderr


def test_symlink_loop_is_detected(good_site: Site) -> None:
    os.symlink(".", good_site.articles / "self")
    result = publish(good_site)
    assert result.returncode in (0, 1), result.stderr
    named = lines_naming(result, ERROR_LINE, "self") + lines_naming(result, WARNING_LINE, "self")
    assert named, f"the loop 'self' is not named: {result.stderr!r}"
    found = feeds_with_good(good_site)
    for fmt in ("rss", "atom", "json"):
        assert len(found.items[fmt]) == 2, (fmt, found.titles(fmt))


# --------------------------------------------------------------------------- the state file


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE unrelated (x)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("make", [_empty, _foreign], ids=["empty", "no-schema"])
def test_state_file_without_our_schema_is_an_error_and_kept(good_site: Site, make: Callable[[Path], None]) -> None:
    make(good_site.state)
    before = good_site.state.read_bytes()
    result = publish(good_site)
    assert result.returncode != 0, f"publish accepted an unusable state file: {result.stdout!r}"
    errors = [line for line in stderr_lines(result) if line.startswith("error: ")]
    assert any("publisher.db" in line for line in errors), f"no error names publisher.db: {result.stderr!r}"
    assert good_site.state.read_bytes() == before, "the state file was replaced or changed"
    assert not (good_site.feeds / "rss.xml").exists(), "feeds written from a state that was not used"
