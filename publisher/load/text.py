"""Reader for plain text as scraped from a blog (the seed's shape).

Title on the first non-empty line; blocks separated by blank lines; a short line without closing
punctuation followed by a paragraph is a section heading; "Also Read:" and friends introduce
related-reading titles; trailing comment and share boilerplate is dropped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from publisher.errors import ArticleError
from publisher.load.source import check_slug, content_hash, slug_from_path
from publisher.models import Document, Problem

MAX_TITLE = 200
MAX_HEADING = 120
MAX_HEADING_WORDS = 14
CLOSING = tuple(".!?:;,…\"”’'»)]")
REFERENCE = re.compile(r"(?:also\s+read|read\s+also|related|see\s+also)\s*:\s*(.*)", re.I)
BOILERPLATE = re.compile(
    r"(?:\d+|one|two|three)\s+(?:thoughts?|comments?|responses?|replies)\s+(?:on|to)\s+\S.*"
    r"|leave\s+a\s+(?:comment|reply)\b.*|share\s+this\b.*|like\s+this\b.*|post\s+navigation"
    r"|related\s+posts?\b.*|you\s+may\s+also\s+like\b.*|comments?|no\s+comments?(?:\s+yet)?\.?"
    r"|click\s+to\s+share\b.*|loading\.*|cancel\s+reply",
    re.I,
)
MAX_BOILERPLATE_LINE = 160


@dataclass(frozen=True, slots=True)
class Block:
    line: int  # 1-based line of the block's first line
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def blocks(text: str, first_line: int = 1) -> list[Block]:
    """Split text into blocks of non-empty lines separated by blank lines."""
    found: list[Block] = []
    current: list[str] = []
    start = first_line
    for number, raw in enumerate(text.split("\n"), first_line):
        line = raw.strip()
        if line and not current:
            start = number
        if line:
            current.append(line)
        elif current:
            found.append(Block(start, tuple(current)))
            current = []
    if current:
        found.append(Block(start, tuple(current)))
    return found


def strip_boilerplate(body: list[Block]) -> list[Block]:
    """Cut the tail from the first boilerplate line after which only short lines remain."""
    for i, block in enumerate(body):
        if not BOILERPLATE.fullmatch(block.lines[0]):
            continue
        tail = [line for b in body[i:] for line in b.lines]
        if all(len(line) <= MAX_BOILERPLATE_LINE for line in tail):
            return body[:i]
    return body


def split_references(body: list[Block]) -> tuple[list[Block], tuple[str, ...]]:
    """Take "Also Read:" blocks out of the text and return the titles they name."""
    kept: list[Block] = []
    refs: list[str] = []
    expect_titles = False
    for block in body:
        match = REFERENCE.fullmatch(block.lines[0])
        if match:
            titles = [match.group(1), *block.lines[1:]]
            refs.extend(t for t in titles if t)
            expect_titles = not any(titles)
        elif expect_titles and all(len(line) <= MAX_TITLE for line in block.lines):
            refs.extend(block.lines)
            expect_titles = False
        else:
            kept.append(block)
            expect_titles = False
    return kept, tuple(dict.fromkeys(refs))


def is_heading(block: Block, following: Block | None) -> bool:
    """A single short line without closing punctuation, followed by a paragraph."""
    if following is None or len(block.lines) != 1:
        return False
    line = block.lines[0]
    return (len(line) <= MAX_HEADING and len(line.split()) <= MAX_HEADING_WORDS
            and not line.endswith(CLOSING) and not is_heading_like(following))


def is_heading_like(block: Block) -> bool:
    line = block.lines[0]
    return len(block.lines) == 1 and len(line) <= MAX_HEADING and not line.endswith(CLOSING)


def to_html(body: list[Block]) -> str:
    """Headings become <h2>, everything else <p>; text is escaped, typographic quotes kept."""
    parts: list[str] = []
    for i, block in enumerate(body):
        following = body[i + 1] if i + 1 < len(body) else None
        tag = "h2" if is_heading(block, following) else "p"
        parts.append(f"<{tag}>{html.escape(block.text, quote=False)}</{tag}>")
    return "\n".join(parts)


def parse(rel: str, text: str, tz: ZoneInfo, warnings: list[Problem]) -> Document:
    """Plain text -> Document. Raises ArticleError when there is no title or no body."""
    all_blocks = blocks(text)
    if not all_blocks:
        raise ArticleError(rel, "no title: the file holds only blank lines", "put the title on the first line")
    first = all_blocks[0]
    title = first.lines[0]
    if len(title) > MAX_TITLE:
        raise ArticleError(rel, f"no title: the first line is {len(title)} characters long, "
                           f"a title has at most {MAX_TITLE}", "put a short title on the first line",
                           first.line)
    rest = ([Block(first.line + 1, first.lines[1:])] if len(first.lines) > 1 else []) + all_blocks[1:]
    body, refs = split_references(strip_boilerplate(rest))
    if not body:
        raise ArticleError(rel, "no text after the title", "add paragraphs below the title", first.line)
    return Document(source=rel, slug=check_slug(rel, slug_from_path(rel)), title=title,
                    body_html=to_html(body), content_hash=content_hash(text), references=refs,
                    warnings=tuple(warnings), lines=(("title", first.line),))
