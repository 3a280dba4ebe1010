"""Which articles the next digest carries, and recording it (the state knows each digest's articles).

A digest carries the articles first published since the last digest that no digest carried yet,
newest first, at most `digest.max_articles`. Nothing new: no digest (unless forced, which carries
the newest articles). The first article leads the digest: the newest, or the one `digest.lead` names when
the digest carries it (a slug no published article has is a warning; one not in this digest is ignored).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from publisher.config import Settings
from publisher.models import Article, Digest, Identity, RenderedDigest

if TYPE_CHECKING:
    from publisher.store import Store

log = logging.getLogger(__name__)


def pick(slugs: Sequence[str], identities: dict[str, Identity], store: Store, limit: int,
         force: bool) -> list[str]:
    """The slugs the next digest carries, newest first."""
    since = store.last_digest_time()
    carried = store.carried()
    fresh = [s for s in slugs if s not in carried and (since is None or identities[s].first_seen > since)]
    chosen = fresh if fresh or not force else list(slugs)
    chosen.sort(key=lambda s: (-identities[s].published.timestamp(), s))
    return chosen[:limit]


def lead_first(chosen: list[str], published: Sequence[str], lead: str) -> list[str]:
    """The digest's slugs with the pinned lead first when the digest carries it (else unchanged)."""
    if not lead:
        return chosen
    if lead not in published:
        log.warning("digest.lead %r: no published article has this slug; the newest article leads instead "
                    "(fix the slug in publisher.toml, or empty it)", lead)
        return chosen
    if lead not in chosen:
        log.info("digest.lead %r is not in this digest (already sent); the newest article leads", lead)
        return chosen
    return [lead, *(s for s in chosen if s != lead)]


def next_digest(slugs: Sequence[str], identities: dict[str, Identity], store: Store, settings: Settings,
                now: datetime, build: Callable[[Sequence[str]], list[Article]], *,
                force: bool = False) -> Digest | None:
    """The next digest, or None when nothing is new. Not recorded: see `remember`."""
    chosen = lead_first(pick(slugs, identities, store, settings.digest.max_articles, force), slugs,
                        settings.digest.lead)
    if not chosen:
        return None
    day = now.astimezone(settings.site.tz).strftime("%Y-%m-%d")
    return Digest(store.new_digest_id(day), now, tuple(build(chosen)))


def remember(store: Store, rendered: RenderedDigest, subject: str) -> None:
    """Record the digest, the articles it carried and its rendered form (delivery sends that)."""
    digest = rendered.digest
    store.record_digest(digest.id, digest.created, [a.entry.slug for a in digest.articles], subject,
                        rendered.html, rendered.text)
