"""Read-only commands built on `prepare`: the digest preview and the related-reading report. They
open the state read-only and record nothing (the preview writes only its files under <output>/preview/).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from publisher.config import Settings
from publisher.digests import next_digest
from publisher.errors import ConfigError
from publisher.pipeline import prepare
from publisher.store import open_store
from publisher.write import write_outputs

PREVIEW_READER = ("Reader", "preview@example.invalid")


@dataclass(frozen=True)
class Preview:
    """The next digest as one reader would get it: files written, digest id, whether it is new, and the
    message (sent to `--to` by the CLI through the configured transport, outside the journal)."""

    files: list[str]
    digest_id: str | None
    fresh: bool
    message: bytes = b""
    sender: str = ""


def preview(settings: Settings, now: datetime, to: str | None = None) -> Preview:
    """Render the next digest as publish would, for a dummy reader (or `to`), into <output>/preview/
    (html, txt and .eml); record nothing. With no new article, the newest articles are shown."""
    from publisher.deliver.message import MessageTemplate, subject_line
    from publisher.deliver.tokens import unsubscribe_url
    from publisher.render.digest import for_reader, render_digest

    with open_store(settings.paths.state, write=False) as store:
        archive = prepare(settings, store, now).archive
        digest = next_digest(archive.newest(), archive.identities, store, settings, now, archive.articles)
        fresh = digest is not None
        digest = digest or next_digest(archive.newest(), archive.identities, store, settings, now,
                                       archive.articles, force=True)
        if digest is None:
            return Preview([], None, False)
        rendered = render_digest(digest, settings, settings.paths.templates)
    url = unsubscribe_url(settings.site.url, "preview")
    template = MessageTemplate(settings, digest.id, subject_line(rendered, settings), rendered.html, rendered.text,
                               now)
    name, address = ("", to) if to else PREVIEW_READER
    message = template.render(subscriber_id="preview", name=name, address=address, unsubscribe_url=url)
    html, text = for_reader(rendered, url, name)
    files = {"preview/digest.html": html.encode(), "preview/digest.txt": text.encode(), "preview/digest.eml": message}
    written, unchanged = write_outputs(settings.paths.output, files)
    return Preview(sorted(written + unchanged), digest.id, fresh, message, template.sender)


def related_report(settings: Settings, now: datetime, slug: str | None, *,
                   every: bool = False) -> list[dict[str, Any]]:
    """Ranked related articles with scores and reasons: of one article (default: the newest), or of
    every article by slug."""
    with open_store(settings.paths.state, write=False) as store:
        run = prepare(settings, store, now)
    entries = run.archive.entries
    if slug is not None and slug not in entries:
        raise ConfigError(f"no published article has the slug {slug!r}", "see the slugs with 'publisher related --all'")
    chosen = [slug] if slug else sorted(entries) if every else run.archive.newest(1)
    return [{"slug": s, "title": entries[s].title,
             "related": [{"slug": t, "title": entries[t].title, "score": score, "reason": reason}
                         for t, score, reason in run.reading.lists.get(s, [])]} for s in chosen]
