"""The email digest: Jinja2 -> MJML -> responsive HTML, plus a plain-text part.

The only module that imports mjml. The HTML and text carry UNSUBSCRIBE, a placeholder delivery
replaces per subscriber (MJML runs once per digest, never per subscriber). The HTML stays under
`digest.max_kb`: past it, full texts become summaries, then the digest keeps as many articles as
fit and ends with "N more articles on the web".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mjml import mjml2html

from publisher.config import Settings
from publisher.errors import OutputError
from publisher.models import Article, Digest, Problem, RenderedDigest
from publisher.render import isolate
from publisher.render.plaintext import html_to_text, wrap
from publisher.render.templates import TemplateProblem, render

log = logging.getLogger(__name__)
UNSUBSCRIBE = "https://unsubscribe.invalid/__UNSUBSCRIBE__"


@dataclass(frozen=True)
class Layout:
    full_text: bool
    shown: int


def digest_title(digest: Digest, settings: Settings) -> str:
    return digest.created.astimezone(settings.site.tz).strftime("Digest of %-d %B %Y")


def archive_url(settings: Settings, name: str) -> str:
    return f"{settings.site.url}digests/{name}"


def _item(article: Article, settings: Settings, related: int, full_text: bool) -> dict[str, Any]:
    entry = article.entry
    text = html_to_text(article.html) if full_text else entry.summary
    return {
        "title": entry.title, "url": article.url, "summary": entry.summary, "html": article.html,
        "text": text, "image": entry.image,
        "reading": f"{entry.reading_minutes} min read",
        "date": article.identity.published.astimezone(settings.site.tz).strftime("%-d %B %Y"),
        "related": article.related[:related],
    }


def _context(digest: Digest, settings: Settings, layout: Layout) -> dict[str, Any]:
    shown = digest.articles[: layout.shown]
    first = shown[0].entry.title if shown else ""
    return {
        "site": {"title": settings.site.title, "url": settings.site.url, "language": settings.site.language,
                 "archive_url": settings.site.url + "index.html"},
        "digest": {"id": digest.id, "title": digest_title(digest, settings), "font_family":
                   settings.digest.font_family, "archive_url": archive_url(settings, f"{digest.id}.html"),
                   "preheader": f"{len(digest.articles)} new: {first}"},
        "items": [_item(a, settings, settings.related.in_digest, layout.full_text) for a in shown],
        "full_text": layout.full_text,
        "more": len(digest.articles) - layout.shown,
        "unsubscribe_url": UNSUBSCRIBE,
        "postal_address": settings.email.postal_address,
    }


def _mjml(source: str, settings: Settings) -> str:
    fonts = {f"font{i}": url for i, url in enumerate(settings.digest.web_fonts)}
    try:
        return mjml2html(source, disable_comments=True, fonts=fonts)
    except ValueError as e:
        raise TemplateProblem(f"digest.mjml.j2: invalid MJML: {e}", "fix the MJML in the template") from e


def _html(digest: Digest, settings: Settings, templates: Path, layout: Layout) -> str:
    return _mjml(render(templates, "digest.mjml.j2", **_context(digest, settings, layout)), settings)


def _fit(digest: Digest, settings: Settings, templates: Path) -> tuple[Layout, str]:
    """The richest layout whose HTML is under the size limit (the footer always stays inside)."""
    limit = settings.digest.max_kb * 1000
    total = len(digest.articles)
    for full_text in dict.fromkeys((settings.digest.full_text, False)):
        html = _html(digest, settings, templates, Layout(full_text, total))
        if len(html.encode()) <= limit:
            return Layout(full_text, total), html
    low, high = 0, total - 1  # binary search for the most summaries that fit
    best = Layout(False, 0), _html(digest, settings, templates, Layout(False, 0))
    while low <= high:
        middle = (low + high + 1) // 2
        html = _html(digest, settings, templates, Layout(False, middle))
        if len(html.encode()) <= limit:
            best, low = (Layout(False, middle), html), middle + 1
        else:
            high = middle - 1
        if middle == 0:
            break
    return best


def _render(digest: Digest, settings: Settings, templates: Path) -> RenderedDigest:
    layout, html = _fit(digest, settings, templates)
    text = wrap(render(templates, "digest.txt.j2", **_context(digest, settings, layout)))
    text.encode("utf-8")  # raises here, for the article at fault, if a lone surrogate got through
    return RenderedDigest(digest, html, text, layout.shown)


def render_digest_checked(digest: Digest, settings: Settings,
                          templates: Path) -> tuple[RenderedDigest | None, list[Problem]]:
    """Render the digest once: HTML (size-guarded) and the matching plain text. An article that makes it
    fail is left out and reported (its Problem); None when no article is left to send."""
    def make(articles: Sequence[Article]) -> RenderedDigest:
        return _render(replace(digest, articles=tuple(articles)), settings, templates)

    rendered, problems, kept = isolate(digest.articles, make, lambda a: a.entry.source, "the digest")
    return (rendered if kept else None), problems


def render_digest(digest: Digest, settings: Settings, templates: Path) -> RenderedDigest:
    """render_digest_checked with the articles left out logged as warnings; raises when none is left."""
    rendered, problems = render_digest_checked(digest, settings, templates)
    for problem in problems:
        log.warning("%s", problem)
    if rendered is None:
        raise OutputError(f"digest {digest.id}: none of its {len(digest.articles)} articles can be rendered",
                          "fix or remove the articles named above")
    return rendered


def for_reader(rendered: RenderedDigest, unsubscribe_url: str) -> tuple[str, str]:
    """The HTML and text with the unsubscribe placeholder filled in."""
    return (rendered.html.replace(UNSUBSCRIBE, unsubscribe_url),
            rendered.text.replace(UNSUBSCRIBE, unsubscribe_url))


def archive_copy(settings: Settings, name: str, html: str, text: str) -> dict[str, bytes]:
    """The "view in browser" copy in the output folder: the unsubscribe link leads to the site's page."""
    page = settings.site.url + "unsubscribe"
    return {f"digests/{name}.html": html.replace(UNSUBSCRIBE, page).encode("utf-8"),
            f"digests/{name}.txt": text.replace(UNSUBSCRIBE, page).encode("utf-8")}
