"""feeds/index.html: every digest and every article, with feed autodiscovery links."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from publisher.config import Settings
from publisher.render import feed_formats
from publisher.render.templates import render


def render_index(settings: Settings, templates: Path, digests: list[tuple[str, datetime, int]],
                 articles: list[tuple[str, str, datetime]]) -> bytes:
    """digests: (id, created, article count), newest first; articles: (title, url, published), newest first."""
    tz = settings.site.tz

    def day(when: datetime) -> dict[str, str]:
        local = when.astimezone(tz)
        return {"iso": local.isoformat(), "date": local.strftime("%-d %B %Y")}

    feeds = [{"type": f.media_type, "url": settings.site.url + f.filename, "name": f.name}
             for f in feed_formats() if f.name in settings.feeds.formats]
    html = render(templates, "index.html.j2", site=settings.site, feeds=feeds,
                  digests=[{"id": i, "title": f"Digest {i}", "count": n, **day(c)} for i, c, n in digests],
                  articles=[{"title": t, "url": u, **day(p)} for t, u, p in articles])
    return html.encode("utf-8")
