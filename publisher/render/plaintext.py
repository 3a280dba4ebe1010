"""Sanitized article HTML -> readable plain text (links as inline URLs, no HTML left), and wrapping."""

from __future__ import annotations

import html as htmllib
import textwrap
from html.parser import HTMLParser

WIDTH = 76
BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "tr", "table", "ul", "ol",
          "figure", "figcaption", "hr", "dl", "dt", "dd"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.current: list[str] = []
        self.href: str | None = None
        self.link_text: list[str] = []

    def _flush(self) -> None:
        text = " ".join("".join(self.current).split())
        if text:
            self.blocks.append(text)
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCKS:
            self._flush()
            if tag == "li":
                self.current.append("- ")
        elif tag == "a":
            self.href = dict(attrs).get("href")
            self.link_text = []
        elif tag == "br":
            self._flush()
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.current.append(f"[{alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCKS:
            if tag.startswith("h") and len(tag) == 2:
                self.current = [part.upper() for part in self.current]
            self._flush()
        elif tag == "a" and self.href:
            label = " ".join("".join(self.link_text).split())
            if self.href.startswith(("http://", "https://")) and self.href != label:
                self.current.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        self.current.append(data)
        if self.href:
            self.link_text.append(data)


def html_to_text(html: str) -> str:
    """Paragraphs separated by blank lines; headings in capitals; links as 'text (URL)'."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    parser._flush()
    return "\n\n".join(htmllib.unescape(block) for block in parser.blocks)


def wrap(text: str, width: int = WIDTH) -> str:
    """Wrap every line to `width`, keeping blank lines, list markers and URLs whole."""
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line.rstrip())
            continue
        indent = "  " if line.startswith("- ") else ""
        out.extend(textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False,
                                 break_on_hyphens=False))
    return "\n".join(out)
