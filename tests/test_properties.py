"""Property: any site of generated articles publishes; one bad article never stops the others.

Hypothesis generates sites of 1-8 articles: Markdown with YAML front matter (title, summary, author,
tags, image, guid, date, draft, slug; double-quoted YAML escapes such as "\\x01", "\\e", "\\uffff",
"\\ud800", "\\0", single-quoted and plain odd values) and plain text in the scraped shape (title line,
headings, paragraphs, "Also Read:", comment boilerplate). Bodies mix Unicode of every plane (astral,
RTL, combining marks, noncharacters), control characters, HTML entities and numeric references
(&#x1;, &#xD800;), raw HTML blocks and <script>; file names are non-ASCII and odd.

Each site is published with the real CLI (click's CliRunner on publisher.cli.main, in-process for
speed; --clock fixed, --no-send) into a fresh temporary folder, and then:
- publish never raises (no traceback) and exits 0 or 1 (1 exactly when it printed an `error:` line);
- every article not named in an `error:` line, and neither a draft nor dated after the clock, is in
  every feed exactly once (found by the unique marker its title starts with), with the same id and
  link in RSS, Atom and JSON Feed, and nothing else is;
- the feeds pass tests/test_hostile.py's check_outputs: feedparser reads RSS and Atom with bozo 0,
  feed.json loads, no output file holds an XML-illegal character (raw or as a numeric reference),
  links and URL attributes are URIs, no media:group, no '<script' in a title, no blank content.

Budget (HYPOTHESIS_PROFILE, default "ci"): "ci" runs 100 sites (about 400 articles), derandomized (the
same sites on every run), no example database, no shrinking; measured 33 s (11 s for the first 30) on
the shared 2-core machine, publish taking 0.1-0.5 s per site. "long" runs 500 sites with fresh
randomness (measured 133 s for 430 sites), for one-off runs:
    HYPOTHESIS_PROFILE=long .venv/bin/pytest -q tests/test_properties.py --hypothesis-show-statistics
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from publisher.cli import main
from tests.conftest import CLOCK, SITE_TOML
from tests.test_hostile import ERROR_LINE, check_outputs

# No shrinking: a failing site is shown as generated, at once (shrinking one ran 5 minutes and stopped
# unfinished); print_blob gives the @reproduce_failure line to replay it.
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, database=None, print_blob=True,
                          phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=500, deadline=None, database=None, print_blob=True,
                          phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
MAX_ARTICLES = 8

# --------------------------------------------------------------------------- characters and snippets

SPECIALS = [
    "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x85", "\x9f", "\t", "\r",
    "\u00a0", "\u00ad", "\u034f", "\u200b", "\u200d", "\u200e", "\u200f", "\u202e", "\u2028", "\u2029",
    "\u0301", "\u0338", "\ufeff", "\ufdd0", "\ufffd", "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff",
    "\U0001f600", "\U0001f1fa\U0001f1e6", "\U0001f469\u200d\U0001f4bb", "\U00020000", "\U0001d518",
    "\U000e0001", "\u05e9\u05dc\u05d5\u05dd", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "e\u0301",
    "\u0928\u092e\u0938\u094d\u0924\u0947", "日本語", "한국어", "£600m", "·", "—", "“quoted”", "&", "<", ">",
    "'", '"', "\\", "*", "_", "`", "#", "[", "]",
]
ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;", "&copy;", "&bogus;", "&#x1;", "&#1;", "&#0;",
            "&#xD800;", "&#xdfff;", "&#xFFFE;", "&#65535;", "&#x10FFFF;", "&#x110000;", "&#12;", "&#x7f;",
            "&#x85;", "&#128512;", "&#x202E;", "&#38;#x1;", "&amp;#x1;"]
HTML_SNIPPETS = [
    "<script>alert(1)</script>", "<p>&#x1;</p>", "<style>p{}</style>", "<img src=x onerror=alert(1)>",
    "<iframe src=\"//evil.example\"></iframe>", "<!-- comment -->", "<![CDATA[ x ]]>", "]]>",
    "<svg><script>alert(1)</script></svg>", "<a href=\"javascript:alert(1)\">x</a>", "<table><tr><td>cell",
    "<math><mi>x</mi></math>", "<p>", "</div>", "<b>bold</b>", "<img src=\"/a.png\" alt=\"\">",
    "<a href=\"https://例え.jp/パス?q=値\">iri</a>", "<object data=x></object>", "<form><input></form>",
    "<details><summary>s</summary>d</details>", "<?xml version=\"1.0\"?>", "<!DOCTYPE html>",
]
MARKDOWN_SNIPPETS = [
    "## A heading", "> a quote", "```\ncode <here> &#x1;\n```", "- one\n- two", "1. first",
    "| a | b |\n|---|---|\n| 1 | 2 |", "[link](http://例え.jp/パス)", "![img](x\" onerror=\"y)",
    "**bold** _it_", "\\", "<https://example.com/>", "[x](javascript:alert(1))", "---", "***", "    indented",
    "[ref]: https://example.com/ref", "~~gone~~",
]
YAML_ESCAPES = [
    r"\x01", r"\e", r"\uffff", r"\ud800", r"\0", r"\a", r"\x7f", r"\x85", r"\u2028", r"\U0001F600",
    r"\ufffe", r"\t", r"\n", r"\udfff", r"\ud83d\ude00", r"\"", r"\\", r"\b", r"\v", r"\f", r"\r", r"\x1b",
    r"\N", r"\_", r"\L", r"\P", r"\ufdd0", r"\U0010FFFF", r"\U0001FFFE", r"\x9f", r"\/", r"\ ",
]
ODD_PLAIN = [
    "~", "null", "yes", "No", "0123", "2024", "-", "[]", "{}", "''", '""', "[a, b]", "{a: b}", "|\n  block\n  text",
    ">-\n  folded\n  text", "&anchor value", "!!binary aGVsbG8=", "*undefined", "@reserved", "`tick", "%", "# only",
    "", "value # comment", "'it''s'", "[unclosed", "x: y", "- item", "!tag x", "? key", "1e3", ".inf",
]
IMAGES = [
    "https://example.com/a.png", "https://x/\" onerror=\"alert(1)", "javascript:alert(1)", "/relative/img.png",
    "img.png", "https://例え.jp/画像.png", "https://example.com/a b.png", "data:image/png;base64,AAAA",
    "//cdn.example.com/x.png", "ftp://example.com/y.png", "https://example.com/<script>", "", "http://[::1]/x.png",
    "https://example.com/%zz.png", "https://user:pw@example.com/a.png", "https://example.com/\x01.png",
]
GUIDS = ["same", "same", "other", "0123", "urn:uuid:2d6f0c8e-8b1e-4b8e-9d2e-000000000001",
         "tag:example.com,2026:1", "https://example.com/p?a=1&b=2", '"g\\x01"', '"\\ud800"', "''", "~", "a b"]
SLUGS = ["same-slug", "same-slug", "ok-slug", "../x", "日本語", "'a b'", "UPPER", "-lead", "x" * 300, "index",
         "feed", "'a/b'", "'.hidden'", "'\u202eevil'", "'é'"]
DATES = {  # value -> dated after the clock (None: not a date, publish must name the file)
    "2026-10-01": False, "2026-11-25T11:59:59Z": False, "2026-11-25": False, "2027-01-01": True,
    "2026-11-25T12:00:01Z": True, "2026-13-45": None, "yesterday": None, "0001-01-01": False,
    "9999-12-31": True, "2026-11-25T12:00:00+14:00": False, "1970-01-01T00:00:00Z": False, "''": None,
}
DRAFTS = {"true": True, "yes": True, "On": True, "false": False, "no": False, "off": False, "maybe": None,
          "''": None}
BOILERPLATE = ["1 thought on “{t}”\n\nLeave a Comment", "2 Comments\n\nLeave a Reply\n\nCancel reply",
               "Share this:\n\nClick to share on Twitter", "Related Posts", "Post navigation"]

# --------------------------------------------------------------------------- strategies

_any_char = st.characters(codec="utf-8", exclude_characters="\x00")
_piece = st.one_of(_any_char, _any_char, st.sampled_from(SPECIALS), st.sampled_from(ENTITIES))
text = st.lists(_piece, max_size=40).map("".join)
inline = text.map(lambda s: re.sub(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", " ", s))
_yaml_char = st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"])
_dq = st.lists(st.one_of(_yaml_char.map(lambda c: {"\\": "\\\\", '"': '\\"'}.get(c, c)),
                         st.sampled_from(YAML_ESCAPES)), max_size=14).map("".join)
_sq = st.text(_yaml_char, max_size=20).map(lambda s: s.replace("'", "''"))
_word = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=10)
yaml_value = st.one_of(_dq.map(lambda s: f'"{s}"'), _sq.map(lambda s: f"'{s}'"), st.sampled_from(ODD_PLAIN), _word)
_quoted = st.sampled_from(IMAGES).map(lambda s: "'" + s.replace("'", "''") + "'")
_tags = st.one_of(st.lists(yaml_value, max_size=4).map(lambda v: "[" + ", ".join(v) + "]"),
                  st.lists(yaml_value, min_size=1, max_size=3).map(lambda v: "".join(f"\n  - {x}" for x in v)),
                  yaml_value)
FIELDS = {
    "summary": yaml_value, "author": yaml_value, "tags": _tags, "image": st.one_of(_quoted, yaml_value),
    "guid": st.one_of(st.sampled_from(GUIDS), yaml_value), "date": st.sampled_from(["2026-10-01", *sorted(DATES)]),
    "draft": st.sampled_from(["false", *sorted(DRAFTS)]), "slug": st.one_of(st.sampled_from(SLUGS), yaml_value),
    "titel": _word, "updated": st.sampled_from(sorted(DATES)),
}
_title = st.tuples(st.sampled_from(["dq", "sq", "plain", "heading"]), _dq, _sq, _word, inline)
_md_block = st.one_of(text, text, st.sampled_from(HTML_SNIPPETS), st.sampled_from(MARKDOWN_SNIPPETS),
                      text.map(lambda t: f"<div>\n{t}\n</div>"), inline.map(lambda t: f"## {t}"),
                      st.lists(st.sampled_from(ENTITIES), min_size=1, max_size=5).map("".join))
_txt_block = st.one_of(text.map(lambda t: t + "."), text, inline.map(lambda t: t[:60]),
                       st.sampled_from(HTML_SNIPPETS), inline.map(lambda t: f"Also Read:\n{t[:80]}"),
                       st.just("Also Read:"), st.sampled_from(BOILERPLATE))
_stem = st.text(st.one_of(st.characters(codec="utf-8", categories=["L", "M", "N"]),
                          st.sampled_from(list(" -_()'!,&+=~[]{}@$;"))), min_size=1, max_size=16).filter(
    lambda s: not s.startswith(".") and len(s.encode()) < 200)


@dataclass(frozen=True)
class Spec:
    """One generated article, before its marker is known."""

    kind: str  # "md" or "txt"
    name: str  # file name relative to the articles folder
    title: tuple[str, str, str, str, str]  # style, then the rest of the title as YAML "...", '...', plain, text
    fields: tuple[tuple[str, str], ...]  # front matter key, YAML value text (Markdown only)
    blocks: tuple[str, ...]

    def hidden(self) -> bool:
        """A draft, or dated after the clock: it waits, and is in no feed."""
        values = dict(self.fields)
        return bool(DRAFTS.get(values.get("draft", "false")) or DATES.get(values.get("date", "2026-10-01")))

    def render(self, marker: str) -> str:
        style, dq, sq, word, line = self.title
        if self.kind == "txt":
            body = "\n\n".join(self.blocks).replace("{t}", f"{marker} {line}")
            return f"{marker} {line}\n\n{body}\n"
        front = {"dq": f'"{marker} {dq}"', "sq": f"'{marker} {sq}'", "plain": f"{marker} {word}"}
        lines = [f"title: {front[style]}"] if style in front else []
        lines += [f"{key}: {value}" for key, value in self.fields]
        heading = f"# {marker} {word}\n\n" if style == "heading" else ""
        return "---\n" + "\n".join(lines) + "\n---\n" + heading + "\n\n".join(self.blocks) + "\n"


@st.composite
def article(draw: st.DrawFn) -> Spec:
    kind = draw(st.sampled_from(["md", "txt"]))
    ext = draw(st.sampled_from([".md", ".md", ".markdown", ".MD"] if kind == "md" else [".txt", ".txt", ".TXT"]))
    folder = draw(st.sampled_from(["", "", "", "sub/", "日本/", "a b/"]))
    keys = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=6)) if kind == "md" else []
    fields = tuple((key, draw(FIELDS[key])) for key in keys)
    blocks = draw(st.lists(_md_block if kind == "md" else _txt_block, min_size=1, max_size=6))
    return Spec(kind, folder + draw(_stem) + ext, draw(_title), fields, tuple(blocks))


sites = st.lists(article(), min_size=1, max_size=MAX_ARTICLES, unique_by=lambda a: a.name)

# --------------------------------------------------------------------------- running and checking


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def run_publish(root: Path) -> Outcome:
    """`publisher publish` in-process; the root logger's handlers are restored afterwards (main calls
    logging.basicConfig, which must bind to this run's stderr)."""
    root_logger = logging.getLogger()
    saved, level = root_logger.handlers[:], root_logger.level
    root_logger.handlers = []
    try:
        result = CliRunner().invoke(main, ["publish", "--config", str(root / "publisher.toml"), "--clock", CLOCK,
                                           "--no-send"])
    finally:
        root_logger.handlers, root_logger.level = saved, level
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("publish raised:\n" + "".join(traceback.format_exception(result.exception))
                             + f"\nstderr:\n{result.stderr}")
    return Outcome(result.exit_code, result.stdout, result.stderr)


def guid_of(fmt: str, ident: str) -> str:
    """The article's guid as RSS and JSON Feed carry it. Atom's <id> must be a URI, so a guid that is not one
    is carried there as tag:<host>,<first-seen day>:<percent-encoded guid> (render/feeds.py atom_id)."""
    if fmt == "atom" and (match := re.fullmatch(r"tag:[^,]+,\d{4}-\d{2}-\d{2}:(.+)", ident)):
        return unquote(match.group(1))
    return ident


def named_in_errors(name: str, errors: list[str]) -> bool:
    """The file is the one an error line is about, or is named in its message (a clash names both)."""
    mention = re.compile(r"(?<![\w./-])" + re.escape(name) + r"(?![\w/-]|\.\w)")
    for line in errors:
        match = ERROR_LINE.match(line)
        if match and (match["file"] == name or mention.search(match["message"])):
            return True
    return False


def write_site(root: Path, specs: list[Spec]) -> dict[str, Spec]:
    """The site folder; returns marker -> spec."""
    (root / "articles").mkdir(parents=True)
    (root / "publisher.toml").write_text(SITE_TOML + "\n[feeds]\nlimit = 100\n", encoding="utf-8")
    markers: dict[str, Spec] = {}
    for number, spec in enumerate(specs):
        marker = f"M{number:03d}Q"
        path = root / "articles" / spec.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(spec.render(marker).encode("utf-8"))
        markers[marker] = spec
    return markers


def check_site(specs: list[Spec]) -> None:
    """Publish the generated site and check every promise (raises AssertionError naming what broke)."""
    with tempfile.TemporaryDirectory(prefix="publisher-prop-") as tmp:
        root = Path(tmp) / "site"
        markers = write_site(root, specs)
        outcome = run_publish(root)
        context = f"\nstdout: {outcome.stdout}\nstderr: {outcome.stderr}"
        assert "Traceback" not in outcome.stdout + outcome.stderr, context
        assert outcome.code in (0, 1), f"exit code {outcome.code}" + context
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        for line in lines:
            assert line.startswith(("error: ", "warning: ")), f"stray stderr line {line!r}" + context
        errors = [line for line in lines if line.startswith("error: ")]
        assert (outcome.code == 1) == bool(errors), f"exit {outcome.code} with {len(errors)} error lines" + context
        event(f"exit {outcome.code}")
        expected = {m for m, spec in markers.items() if not spec.hidden() and not named_in_errors(spec.name, errors)}
        allowed = {m for m, spec in markers.items() if not spec.hidden()}
        found = check_outputs(root / "feeds")
        by_marker: dict[str, list[tuple[str, str]]] = {}
        for fmt in ("rss", "atom", "json"):
            seen = [(item.title[:5], item.id, item.link) for item in found.items[fmt]]
            titles = [title for title, _, _ in seen]
            assert set(titles) <= allowed, f"{fmt}: unknown or waiting items {set(titles) - allowed}" + context
            assert len(titles) == len(set(titles)), f"{fmt}: an article twice: {titles}" + context
            missing = expected - set(titles)
            assert not missing, f"{fmt}: not published and not named in an error: " + ", ".join(
                f"{m} ({markers[m].name})" for m in sorted(missing)) + context
            for title, ident, link in seen:
                by_marker.setdefault(title, []).append((guid_of(fmt, ident), link))
        for marker, views in by_marker.items():
            assert len(set(views)) == 1 and len(views) == 3, f"{marker}: ids/links differ by feed: {views}" + context
        event("published", "all" if len(by_marker) == len(markers) else "some" if by_marker else "none")
        event("articles published", len(by_marker))


@settings(PROFILE)
@given(specs=sites)
def test_any_generated_site_publishes_every_good_article(specs: list[Spec]) -> None:
    check_site(specs)
