"""The email digest: Jinja2 -> MJML -> responsive HTML, plus a plain-text part.

The only module that imports mjml. The HTML and text carry UNSUBSCRIBE and GREETING, placeholders
delivery replaces per subscriber (MJML runs once per digest, never per subscriber): the unsubscribe URL
and "Hi Ana," (the first word of the subscriber's name; "Hello," without one). The HTML stays under
`digest.max_kb`: past it, full texts become summaries, then the digest keeps as many articles as
fit and ends with "N more articles on the web".
"""

from __future__ import annotations

import html as htmllib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from mjml import mjml2html

from publisher.config import Settings
from publisher.cron import parse_cron
from publisher.enrich.sanitize import sanitize
from publisher.errors import OutputError
from publisher.models import Article, Digest, Problem, RenderedDigest
from publisher.render import isolate
from publisher.render.plaintext import html_to_text, wrap
from publisher.render.templates import TemplateProblem, render

log = logging.getLogger(__name__)
UNSUBSCRIBE = "https://unsubscribe.invalid/__UNSUBSCRIBE__"
GREETING = "__PUBLISHER_GREETING__"
NEUTRAL = "Hello,"
BLANK_LINES = re.compile(r"\n{3,}")
NAME_MAX = 40  # characters of a name in the greeting; a longer first word is not a name worth printing


@dataclass(frozen=True)
class Layout:
    full_text: bool
    shown: int


def greeting(name: str) -> str:
    """The opening line for one reader: "Hi Ana," from the first word of their name ("Ana María López"),
    "Hello," when the name is empty, holds no letter, or its first word is too long to be a first name."""
    words = "".join(c if c.isprintable() else " " for c in name).split()
    first = words[0].strip(",;:") if words else ""
    if not first or len(first) > NAME_MAX or not any(c.isalpha() for c in first):
        return NEUTRAL
    return f"Hi {first},"


def cadence(cron: str) -> str:
    """"Weekly", "Daily" or "Monthly" when the schedule's cron says so simply; else ""."""
    try:
        when = parse_cron(cron)
    except ValueError:
        return ""
    once_a_day = len(when.second) == len(when.minute) == len(when.hour) == 1 and len(when.month) == 12
    if not once_a_day:
        return ""
    if when.day_star and len(when.weekday) == 1:
        return "Weekly"
    if when.day_star and when.weekday_star:
        return "Daily"
    return "Monthly" if when.weekday_star and len(when.day) == 1 else ""


def digest_label(created: datetime, settings: Settings) -> str:
    """The digest's human label: "Weekly digest · 29 November 2026" (else "Digest · 29 November 2026")."""
    word = cadence(settings.schedule.cron)
    day = created.astimezone(settings.site.tz).strftime("%-d %B %Y")
    return f"{word} digest · {day}" if word else f"Digest · {day}"


def digest_title(digest: Digest, settings: Settings) -> str:
    return digest_label(digest.created, settings)


def intro_html(settings: Settings) -> str:
    """`digest.intro` (Markdown) as sanitized HTML; empty when there is none."""
    if not settings.digest.intro.strip():
        return ""
    from publisher.load.markdown import render_markdown  # Markdown and YAML: not for every run's archive copies

    return sanitize(render_markdown(settings.digest.intro), settings.site.url, settings.site.url).strip()


def archive_url(settings: Settings, name: str) -> str:
    return f"{settings.site.url}digests/{name}"


def _item(article: Article, settings: Settings, related: int, full_text: bool) -> dict[str, Any]:
    entry = article.entry
    text = html_to_text(article.html) if full_text else entry.summary
    return {
        "title": entry.title, "url": article.url, "summary": entry.summary, "html": article.html,
        "text": text, "image": entry.image, "image_alt": entry.image_alt or "",  # none: decorative (alt="")
        "reading": f"{entry.reading_minutes} min read",
        "date": article.identity.published.astimezone(settings.site.tz).strftime("%-d %B %Y"),
        "related": article.related[:related],
    }


def _preheader(intro: str, shown: Sequence[Article], total: int) -> str:
    """The inbox preview line: the intro's opening words, else the lead's summary."""
    text = " ".join(html_to_text(intro).split()) if intro else (shown[0].entry.summary if shown else "")
    if len(text) > 150:
        text = text[:150].rsplit(" ", 1)[0] + "…"
    return text or f"{total} new article{'s' if total != 1 else ''}"


def _context(digest: Digest, settings: Settings, layout: Layout) -> dict[str, Any]:
    shown = digest.articles[: layout.shown]
    intro = intro_html(settings)
    items = [_item(a, settings, settings.related.in_digest, layout.full_text) for a in shown]
    return {
        "site": {"title": settings.site.title, "url": settings.site.url, "language": settings.site.language,
                 "archive_url": settings.site.url + "index.html"},
        "digest": {"id": digest.id, "title": digest_title(digest, settings), "font_family":
                   settings.digest.font_family, "archive_url": archive_url(settings, f"{digest.id}.html"),
                   "preheader": _preheader(intro, shown, len(digest.articles))},
        "greeting": GREETING, "intro_html": intro, "intro_text": html_to_text(intro) if intro else "",
        "items": items, "lead": items[0] if items else None, "others": items[1:],
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
    text = wrap(BLANK_LINES.sub("\n\n", render(templates, "digest.txt.j2", **_context(digest, settings, layout))))
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


def fill(text: str, unsubscribe_url: str, name: str, *, html: bool) -> str:
    """One reader's copy of a rendered part: the unsubscribe URL and the greeting put in (escaped in HTML)."""
    hello = greeting(name)
    return text.replace(UNSUBSCRIBE, unsubscribe_url).replace(GREETING, htmllib.escape(hello) if html else hello)


def for_reader(rendered: RenderedDigest, unsubscribe_url: str, name: str = "") -> tuple[str, str]:
    """The HTML and text with the unsubscribe URL and the greeting filled in (neutral without a name)."""
    return (fill(rendered.html, unsubscribe_url, name, html=True),
            fill(rendered.text, unsubscribe_url, name, html=False))


def archive_copy(settings: Settings, name: str, html: str, text: str) -> dict[str, bytes]:
    """The "view in browser" copy in the output folder: the unsubscribe link leads to the site's page and
    the greeting is the neutral one (the page is the same for every reader)."""
    page = settings.site.url + "unsubscribe"
    return {f"digests/{name}.html": fill(html, page, "", html=True).encode("utf-8"),
            f"digests/{name}.txt": fill(text, page, "", html=False).encode("utf-8")}
