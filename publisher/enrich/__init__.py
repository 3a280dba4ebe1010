"""Enrich: sanitize the HTML, make URLs absolute, add a summary and a reading time."""

from __future__ import annotations

import html as htmllib
import math
import re
from collections.abc import Sequence

from publisher.config import SiteSettings
from publisher.enrich.sanitize import absolute, sanitize
from publisher.errors import ArticleError
from publisher.models import Document, Entry

MODEL_VERSION = 3  # the related-reading model: its words (3: titles weighted), weights and fit. Bump it when
# they change: a stored index of another model is fitted again, and every cached list is ranked again.
SUMMARY_CHARS = 280
WORDS_PER_MINUTE = 230
TAG = re.compile(r"<[^>]+>")
FIRST_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S)
IMAGE = re.compile(r"<img\s[^>]*\bsrc=")


def plain_text(html: str) -> str:
    """HTML -> text with collapsed whitespace."""
    return " ".join(htmllib.unescape(TAG.sub(" ", html)).split())


def shorten(text: str, limit: int = SUMMARY_CHARS) -> str:
    """Cut at a word boundary, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0].rstrip(" ,;:.-–—")
    return cut + "…"


def summarize(html: str) -> str:
    """The first paragraph, cut at a word boundary."""
    match = FIRST_PARAGRAPH.search(html)
    return shorten(plain_text(match.group(1) if match else html))


def words_of(html: str) -> list[str]:
    """The words a reader sees (entities not yet decoded: none holds a space)."""
    return TAG.sub(" ", html).split()


def reading_minutes(words: Sequence[str]) -> int:
    return max(1, math.ceil(len(words) / WORDS_PER_MINUTE))


def _image(site: SiteSettings, image: str | None) -> str | None:
    """The image as an absolute URI. Load has made it an http(s) URI or a path (and warned about anything
    else), and site.url is an ASCII http(s) URL, so joining them is all that is left to do."""
    return absolute(site.url, site.url, image) if image else None


def has_content(html: str, words: Sequence[str]) -> bool:
    """Some text or an image: what a reader can see (`words`: words_of(html); a word that is only
    entities of white space, such as &nbsp;, is none)."""
    return any(htmllib.unescape(word).split() for word in words) or IMAGE.search(html) is not None


def enrich(doc: Document, site: SiteSettings) -> tuple[Entry, str]:
    """Document -> (Entry, sanitized HTML with absolute URLs). Raises ArticleError when nothing is left
    of the body once unsafe HTML is removed (never whitespace-only content in the feeds)."""
    body = sanitize(doc.body_html, site.url, site.page_url(doc.slug))
    words = words_of(body)
    if not has_content(body, words):
        raise ArticleError(doc.source, "nothing left once unsafe HTML is removed",
                           "write the article as text (HTML may hold only safe tags such as <p>, <a>, <img>)")
    entry = Entry(
        source=doc.source, slug=doc.slug, title=doc.title,
        summary=shorten(" ".join(doc.summary.split())) if doc.summary else summarize(body),
        reading_minutes=reading_minutes(words), content_hash=doc.content_hash, date=doc.date,
        updated=doc.updated, author=doc.author, tags=doc.tags,
        image=_image(site, doc.image), draft=doc.draft,
        references=doc.references, guid=doc.guid, link=doc.link, image_alt=doc.image_alt,
    )
    return entry, body
