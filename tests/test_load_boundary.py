"""The load boundary: every value that leaves load + enrich is safe for XML, SQLite and the feed libraries.

Each test writes a real article file, finds it with the real scan, reads it with `publisher.load.read`
and enriches it with `publisher.enrich.enrich`, then checks the Entry and the HTML: strict UTF-8
encoding (no lone surrogate) and lxml accepting every value as element text (no character XML 1.0
forbids), and that the warning names the file and the line.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from publisher.config import SiteSettings
from publisher.enrich import enrich
from publisher.errors import ArticleError
from publisher.load import EXTENSIONS, read, scan_checked
from publisher.load.source import _text_of, plain_title
from publisher.models import Entry, Problem, SourceFile

SITE = SiteSettings(title="Test Site", url="https://example.com/", description="", language="en",
                    author="", timezone="UTC", permalink="posts/{slug}/")
UTC = ZoneInfo("UTC")


def load(folder: Path, name: str, text: str) -> tuple[Entry, str, tuple[Problem, ...]]:
    """Write one article, then scan, read and enrich it for real."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    files, problems = scan_checked(folder, EXTENSIONS)
    assert problems == []
    (source,) = [f for f in files if f.rel == name]
    doc = read(source, UTC)
    entry, html = enrich(doc, SITE)
    return entry, html, doc.warnings


def assert_xml_safe(value: str) -> None:
    value.encode("utf-8", errors="strict")  # a lone surrogate raises here
    etree.Element("x").text = value  # "All strings must be XML compatible" raises here
    etree.fromstring(f"<x>{value.replace('&', '&amp;').replace('<', '&lt;')}</x>".encode())


def assert_entry_safe(entry: Entry, html: str) -> None:
    for field in dataclasses.fields(entry):
        value = getattr(entry, field.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str):
                assert_xml_safe(item)
    assert_xml_safe(html)


def warnings_for(warnings: tuple[Problem, ...], name: str) -> list[Problem]:
    return [w for w in warnings if w.path == name and w.severity == "warning"]


# --------------------------------------------------------------------------- YAML escapes

# (front matter line, field, what must be left of it); the bad value sits on line 3 of the file
ESCAPES = {
    "title-x01": ('title: "A\\x01B"', "title", "AB"),
    "summary-bell": ('summary: "s\\a"', "summary", "s"),
    "author-nul": ('author: "a\\0"', "author", "a"),
    "tags-x01": ('tags: ["t\\x01", "u"]', "tags", ("t", "u")),
    "title-uffff": ('title: "A\\uffff"', "title", "A"),
    "title-escape": ('title: "A\\e"', "title", "A"),
    "title-surrogate": ('title: "A\\ud800"', "title", "A"),
    "title-low-surrogate": ('title: "A\\udfff B"', "title", "A B"),
    "guid-x01": ('guid: "g\\x01"', "guid", "g"),
    "related-x1f": ('related: ["R\\x1f1"]', "references", ("R1",)),
    "image-x01": ('image: "/img/a\\x01.png"', "image", "https://example.com/img/a.png"),
}


@pytest.mark.parametrize(("line", "field", "expected"), list(ESCAPES.values()), ids=list(ESCAPES))
def test_yaml_escape_is_cleaned_with_a_warning_naming_file_and_line(
        tmp_path: Path, line: str, field: str, expected: object) -> None:
    head = "" if field == "title" else "title: Plain Title\n"
    text = f"---\ndate: 2026-10-01\n{line}\n{head}---\nSome body text.\n"
    entry, html, warnings = load(tmp_path / "articles", "esc.md", text)
    assert_entry_safe(entry, html)
    assert getattr(entry, field) == expected
    ours = warnings_for(warnings, "esc.md")
    assert [(w.line, "XML 1.0" in w.message) for w in ours] == [(3, True)], ours
    assert f"'{field}'" in ours[0].message


@pytest.mark.parametrize("value", ['"\\x01"', '"\\ud800\\e"', '"<script></script>"', '"  \\x02  "'])
def test_title_with_nothing_left_is_an_error_naming_the_line(tmp_path: Path, value: str) -> None:
    with pytest.raises(ArticleError) as caught:
        load(tmp_path / "articles", "t.md", f"---\ndate: 2026-10-01\ntitle: {value}\n---\nBody.\n")
    assert (caught.value.path, caught.value.line, caught.value.severity) == ("t.md", 3, "error")
    assert "title" in caught.value.message


def test_guid_with_nothing_left_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ArticleError) as caught:
        load(tmp_path / "articles", "g.md", '---\ntitle: T\nguid: "\\x01\\x02"\n---\nBody.\n')
    assert (caught.value.line, "guid" in caught.value.message) == (3, True)


def test_escape_beyond_unicode_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ArticleError) as caught:
        load(tmp_path / "articles", "u.md", '---\ndate: 2026-10-01\ntitle: "A\\U00110000"\n---\nBody.\n')
    assert caught.value.line == 3


def test_unknown_key_and_bad_values_make_printable_messages(tmp_path: Path) -> None:
    entry, _, warnings = load(tmp_path / "articles", "k.md", '---\ntitle: K\n"ti\\x01tel\\ud800": x\n---\nB.\n')
    assert entry.title == "K"
    for warning in warnings:
        assert_xml_safe(str(warning))
    with pytest.raises(ArticleError) as caught:
        load(tmp_path / "more", "d.md", '---\ntitle: D\ndate: "2026\\ud800"\n---\nB.\n')
    assert_xml_safe(str(caught.value))


# --------------------------------------------------------------------------- character references in HTML

CHARREFS = ["&#x1;", "&#xD800;", "&#0;", "&#xFFFF;", "&#x1b", "&#55296;", "&#x110000;"]


@pytest.mark.parametrize("ref", CHARREFS)
def test_character_reference_in_raw_html_is_removed_with_a_warning(tmp_path: Path, ref: str) -> None:
    text = f"---\ntitle: Refs\n---\nFirst paragraph.\n\n<p>bad{ref}ref</p>\n\n<div>x {ref} y</div>\n"
    entry, html, warnings = load(tmp_path / "articles", "refs.md", text)
    assert_entry_safe(entry, html)
    assert "badref" in html.replace("\ufffd", "")
    assert [w.line for w in warnings_for(warnings, "refs.md")] == [6]


def test_character_reference_in_markdown_text_is_safe(tmp_path: Path) -> None:
    entry, html, _ = load(tmp_path / "articles", "md.md", "---\ntitle: T\n---\nA &#x1; and &#xFFFF; b.\n")
    assert_entry_safe(entry, html)


# --------------------------------------------------------------------------- titles

TITLES = {
    "Cross-site <script>alert(1)</script> test": "Cross-site alert(1) test",
    "AT&T": "AT&T",
    "AT&amp;T": "AT&T",
    "1 < 2": "1 < 2",
    "Tom & Jerry <3": "Tom & Jerry <3",
    "<b>Bold</b> <i>move</i>": "Bold move",
    "x &lt;script&gt;alert(1)&lt;/script&gt; y": "x alert(1) y",
    "Q&amp;amp;A": "Q&amp;A",
    "<img src=x onerror=alert(1)>Picture": "Picture",
    "Putin’s “War”": "Putin’s “War”",
}


@pytest.mark.parametrize(("title", "expected"), list(TITLES.items()), ids=list(TITLES))
def test_title_tags_are_stripped_and_the_text_stays(tmp_path: Path, title: str, expected: str) -> None:
    quoted = title.replace("\\", "\\\\").replace('"', '\\"')
    entry, _, _ = load(tmp_path / "articles", "t.md", f'---\ntitle: "{quoted}"\n---\nBody.\n')
    assert entry.title == expected
    entry, _, _ = load(tmp_path / "text", "t.txt", f"{title}\n\nBody paragraph.\n")
    assert entry.title == expected


def test_markdown_heading_title_is_stripped_too(tmp_path: Path) -> None:
    entry, _, _ = load(tmp_path / "articles", "h.md", "\n# A <em>B</em>\n\nBody.\n")
    assert entry.title == "A B"


# --------------------------------------------------------------------------- image

IMAGES = {
    "quote-onerror": ('https://x/" onerror="alert(1)', "https://x/%22%20onerror=%22alert(1)"),
    "angle-script": ("https://example.com/<script>alert(1)</script>",
                     "https://example.com/%3Cscript%3Ealert(1)%3C/script%3E"),
    "relative-iri": ("/images/ä b.png", "https://example.com/images/%C3%A4%20b.png"),
    "idn-host": ("https://Bücher.example/日本.png", "https://xn--bcher-kva.example/%E6%97%A5%E6%9C%AC.png"),
    "protocol-relative": ("//cdn.example/a.png", "https://cdn.example/a.png"),
    "plain": ("https://example.org/a.png?x=1&y=2", "https://example.org/a.png?x=1&y=2"),
    "javascript": ("javascript:alert(1)", None),
    "javascript-tab": ("java\tscript:alert(1)", None),
    "data": ("data:image/png;base64,AAAA", None),
    "ftp": ("ftp://example.org/a.png", None),
    "no-host": ("https:///a.png", None),
    "bad-host": ("https://exa mple.org/a.png", None),
    "bad-port": ("https://example.org:http/a.png", None),
    "bad-ipv6": ("https://[::1/a.png", None),
}


@pytest.mark.parametrize(("image", "expected"), list(IMAGES.values()), ids=list(IMAGES))
def test_image_is_an_http_uri_or_left_out_with_a_warning(tmp_path: Path, image: str,
                                                         expected: str | None) -> None:
    quoted = image.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    entry, html, warnings = load(tmp_path / "articles", "i.md", f'---\ntitle: I\nimage: "{quoted}"\n---\nBody.\n')
    assert entry.image == expected
    assert_entry_safe(entry, html)
    ours = warnings_for(warnings, "i.md")
    if expected is None:
        assert [w.line for w in ours] == [3] and "image" in ours[0].message, ours
        return
    if set(image) & set(' "<>\\^`{|}'):  # published encoded, but the operator is told (a typo, or an attack)
        assert [w.line for w in ours] == [3] and "which a URL may not" in ours[0].message, ours
    else:
        assert ours == []  # an IRI is a URL in another script: encoded silently
    assert expected.isascii() and not set(expected) & set(' "<>\\^`{|}')


def test_links_and_images_in_the_body_are_uris(tmp_path: Path) -> None:
    text = ("---\ntitle: L\n---\n[a](</日本 語?q=é#ü>) [b](https://bücher.example/x) [c](#Überblick)\n\n"
            '<img src="/ü.png" alt="u"> <a href="https://exa mple.org/">bad host</a>\n')
    _, html, _ = load(tmp_path / "articles", "l.md", text)
    assert 'href="https://example.com/%E6%97%A5%E6%9C%AC%20%E8%AA%9E?q=%C3%A9#%C3%BC"' in html
    assert 'href="https://xn--bcher-kva.example/x"' in html
    assert 'href="https://example.com/posts/l/#%C3%9Cberblick"' in html
    assert 'src="https://example.com/%C3%BC.png"' in html
    assert "exa mple" not in html and "bad host" in html
    for url in re.findall(r'(?:href|src)="([^"]*)"', html):
        assert url.isascii() and " " not in url, url


# --------------------------------------------------------------------------- a body with nothing left

@pytest.mark.parametrize("body", ["<script>alert(1)</script>\n", "<style>p{}</style>\n<script>x</script>\n",
                                  "&nbsp;\n", "<p>&#x1;</p>\n", "<div> </div>\n<iframe src=x></iframe>\n"])
def test_body_with_nothing_left_is_an_error(tmp_path: Path, body: str) -> None:
    with pytest.raises(ArticleError) as caught:
        load(tmp_path / "articles", "e.md", f"---\ntitle: Empty\n---\n{body}")
    assert caught.value.path == "e.md" and "nothing left" in caught.value.message


def test_body_of_only_an_image_is_kept(tmp_path: Path) -> None:
    _, html, _ = load(tmp_path / "articles", "p.md", "---\ntitle: Pic\n---\n![a picture](/a.png)\n")
    assert 'src="https://example.com/a.png"' in html


# --------------------------------------------------------------------------- a file that vanishes


def test_file_vanished_after_the_scan_is_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "gone.md").write_text("---\ntitle: Gone\n---\nBody.\n", encoding="utf-8")
    (source,), _ = scan_checked(folder, EXTENSIONS)
    (folder / "gone.md").unlink()
    with pytest.raises(ArticleError) as caught:
        read(source, UTC)
    assert (caught.value.path, caught.value.severity) == ("gone.md", "warning")
    assert "vanished" in str(caught.value)


def test_a_path_climbing_out_cannot_be_read(tmp_path: Path) -> None:
    folder = tmp_path / "site" / "articles"
    folder.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("---\ntitle: Secret\n---\nroot:x:0:0\n", encoding="utf-8")
    rel = "../../outside/secret.md"
    source = SourceFile(os.path.join(str(folder), rel), rel, 0, 30)
    with pytest.raises(ArticleError) as caught:
        read(source, UTC)
    assert "outside the articles folder" in caught.value.message and caught.value.severity == "error"


# --------------------------------------------------------------------------- generated articles


def _yaml_escaped(text: str) -> str:
    """Every character as a YAML double-quoted escape, so any code point (even a surrogate) gets in."""
    return '"' + "".join(c if c.isascii() and c.isalnum() else f"\\U{ord(c):08X}" for c in text) + '"'


ANY_CHAR = st.characters(codec=None, categories=None)
BODY_PIECES = st.sampled_from(["&#x1;", "&#0;", "&#xD800;", "&#xFFFF;", "&amp;", "<p>", "</p>", "<script>",
                               "<b>x</b>", "\n\n", " ", "[l](/ü)", "&", "<", "é", "日本", "\U0001F600"])


def generated_article(title: str, other: str, body: list[str]) -> str:
    value = _yaml_escaped(other)
    text = (f"---\ntitle: {_yaml_escaped(title)}\nsummary: {value}\nauthor: {value}\ntags: [{value}, x]\n"
            f"image: {value}\nguid: {_yaml_escaped(other + 'x')}\nrelated: [{value}]\n---\n"
            f"{''.join(body)}\nend\n")
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # no raw surrogate in a file


GENERATED = {"title": st.text(ANY_CHAR, min_size=1, max_size=12), "other": st.text(ANY_CHAR, max_size=12),
             "body": st.lists(st.one_of(BODY_PIECES, st.text(ANY_CHAR, max_size=6)), min_size=1, max_size=12)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**GENERATED)
def test_generated_values_never_leave_load_unsafe(tmp_path: Path, title: str, other: str,
                                                  body: list[str]) -> None:
    """Any code point in any field, any mix of references and raw HTML: an ArticleError naming the
    file, or an Entry and HTML that XML, SQLite (strict UTF-8) and the feed libraries accept.
    Budget: 150 examples, about 2 s."""
    try:
        entry, html, warnings = load(tmp_path / "gen", "g.md", generated_article(title, other, body))
    except ArticleError as e:
        event(f"error: {e.message[:30]}")
        assert e.path == "g.md"
        assert_xml_safe(str(e))
        return
    event("published")
    assert_entry_safe(entry, html)
    assert html.strip() and entry.title.strip()
    for warning in warnings:
        assert_xml_safe(str(warning))


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(blacklist_characters="<&")))
def test_a_title_without_markup_is_only_whitespace_collapsed(title: str) -> None:
    """plain_title's shortcut (no '<', no '&': nothing for the HTML parser to do) gives what the parser
    gives: the text with whitespace collapsed."""
    assert plain_title(title) == _text_of(title) == " ".join(title.split())
