"""The feeds output: every configured feed, rendered only when what they show changed."""

from __future__ import annotations

import html as htmllib
from typing import TYPE_CHECKING

from publisher import __version__
from publisher.memo import memo_hit, memo_keep, memo_key
from publisher.models import Article, Problem
from publisher.outputs import Derived, Made
from publisher.outputs.feed_archive import archive_made, plan_archive, subscription_history
from publisher.render import History, feed_names, render_feeds_checked

if TYPE_CHECKING:
    from publisher.pipeline import Archive


def with_related_reading(article: Article) -> Article:
    """The feed item's HTML, ending with a short 'Related reading' list of links."""
    if not article.related:
        return article
    items = "".join(f'<li><a href="{htmllib.escape(link.url)}">{htmllib.escape(link.title)}</a></li>'
                    for link in article.related)
    html = f"{article.html}\n<h3>Related reading</h3>\n<ul>{items}</ul>"
    return Article(article.entry, article.identity, article.url, html, article.related)


def feed_inputs(archive: Archive, slugs: list[str], history: History | None = None) -> object:
    """What the feeds show: their items, the titles in their related-reading lists, the settings,
    publisher's version and their RFC 5005 link to the archive."""
    settings = archive.settings
    related = {s: [(t, archive.entries[t].title) for t in archive.related.get(s, []) if t in archive.entries]
               for s in slugs}
    return (__version__, settings.site, settings.feeds, settings.related.in_feeds,
            [(archive.entries[s], archive.identities[s], related[s]) for s in slugs], history)


def feed_files(archive: Archive, slugs: list[str], history: History | None, *,
               record: bool) -> tuple[dict[str, bytes], list[Problem]]:
    """The subscription documents of `slugs` (newest first) with `history` (their prev-archive link),
    rendered only when their inputs changed. All feeds or none."""
    settings = archive.settings
    key = memo_key(feed_inputs(archive, slugs, history))
    names = feed_names(settings.feeds.formats)
    kept = {name: memo_hit(archive.store, settings.paths.output, name, key + name) for name in names}
    if all(data is not None for data in kept.values()):
        return {name: data for name, data in kept.items() if data is not None}, []
    top = archive.articles(slugs)
    if settings.related.in_feeds:
        top = [with_related_reading(a) for a in top]
    files, problems = render_feeds_checked(settings.site, top, settings.feeds.formats,
                                           settings.feeds.hubs, history=history)
    if record and not problems:  # with an article left out, render again next time (and report it)
        for name, data in files.items():
            memo_keep(archive.store, name, key + name, data)
    return files, problems


def feed_made(archive: Archive, *, record: bool, derived: Derived | None = None) -> Made:
    """The subscription documents (the newest `feeds.limit` articles not archived yet) and their RFC 5005
    archive documents (publisher.outputs.feed_archive), with the articles either left out."""
    plan = plan_archive(archive)
    files, problems = feed_files(archive, plan.subscription, subscription_history(archive.settings, plan),
                                 record=record)
    made = archive_made(archive, plan, record=record, derived=derived)
    made.add(Made(files=files, left_out=problems))
    return made
