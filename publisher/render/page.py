"""An article's own HTML page (article.html.j2): content, related reading, feed autodiscovery, a
subscribe form, the canonical link, Open Graph/Twitter meta and JSON-LD `Article`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup

from publisher.config import Settings
from publisher.models import Article
from publisher.render import feed_formats
from publisher.render.archive import topic_feeds
from publisher.render.templates import render
from publisher.tagslug import Topic


def feed_links(settings: Settings) -> list[dict[str, str]]:
    """The configured feeds, for <link rel="alternate"> and visible links."""
    return [{"type": f.media_type, "url": settings.site.url + f.filename, "name": f.name}
            for f in feed_formats() if f.name in settings.feeds.formats]


def author_of(article: Article, settings: Settings) -> str:
    return article.entry.author or settings.site.author or settings.site.title


def json_ld(article: Article, settings: Settings, canonical: str) -> Markup:
    """schema.org Article as JSON safe inside <script> ("</" and "<!--" cannot end or open anything)."""
    entry = article.entry
    data: dict[str, Any] = {
        "@context": "https://schema.org", "@type": "Article", "headline": entry.title,
        "description": entry.summary, "url": canonical, "mainEntityOfPage": canonical,
        "datePublished": article.identity.published.isoformat(),
        "dateModified": article.modified.isoformat(),
        "author": {"@type": "Person", "name": author_of(article, settings)},
        "publisher": {"@type": "Organization", "name": settings.site.title, "url": settings.site.url},
        "inLanguage": settings.site.language,
    }
    if entry.image:
        data["image"] = entry.image
    if entry.tags:
        data["keywords"] = list(entry.tags)
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _article(article: Article, settings: Settings, canonical: str) -> dict[str, Any]:
    entry, ident = article.entry, article.identity
    original = entry.link
    return {
        "title": entry.title, "summary": entry.summary, "url": settings.site.page_url(entry.slug),
        "canonical": canonical, "html": Markup(article.html), "tags": entry.tags,
        "date": ident.published.strftime("%-d %B %Y"), "published_iso": ident.published.isoformat(),
        "modified_iso": ident.updated.isoformat() if ident.updated else "",
        "author": author_of(article, settings), "reading": f"{entry.reading_minutes} min read",
        "image": entry.image, "image_alt": entry.image_alt or "", "image_width": None, "image_height": None,
        "original": original, "original_host": urlsplit(original).hostname or original if original else "",
    }


def page_tags(settings: Settings, tags: Sequence[tuple[str, Topic | None]]) -> tuple[list[dict[str, Any]],
                                                                                   list[dict[str, Any]]]:
    """An article's tags as shown (name as written, its feed when it has one) and the tag feeds for
    autodiscovery (each feed once, although two of its tags may share one)."""
    shown: list[dict[str, Any]] = []
    unique: dict[str, dict[str, Any]] = {}
    for name, topic in tags:
        feed = topic_feeds(settings, topic) if topic else None
        shown.append({"name": name, "feed": feed})
        if topic and feed:
            unique.setdefault(topic.slug, feed)
    return shown, list(unique.values())


def render_page(article: Article, settings: Settings, tags: Sequence[tuple[str, Topic | None]] = ()) -> bytes:
    """The page of one article (its identity already in the site's timezone). An article published
    elsewhere first (front matter `link:`) names its original, which is also its canonical URL. `tags`:
    the article's tags, each with its feed's Topic when it has one (publisher.outputs.tags)."""
    canonical = article.entry.link or settings.site.page_url(article.entry.slug)
    shown, topics = page_tags(settings, tags)
    html = render(settings.paths.templates, "article.html.j2", site=settings.site, feeds=feed_links(settings),
                  article=_article(article, settings, canonical), related=article.related,
                  subscribe_url=settings.site.url + "subscribe", jsonld=json_ld(article, settings, canonical),
                  tags=shown, topics=topics)
    return html.encode("utf-8")
