"""The output folder over HTTP: the feeds, index.html and the digest archive, nothing else.

What may be served is a table: the feed files (from the table of feed formats) and index.html at the
top, the same feed files in `feed-archive/<N>/` (RFC 5005 archive documents) and `tags/<slug>/` (per-tag
feeds), `digests/<name>.html|.txt`, and the index.html of any folder but preview/ (an article's page at
`<slug>/`, an archive month), its folder's URL ending in `/`. Anything else is 404: other files
(preview/ is for the operator), folders (no listing), hidden names, `..` and absolute paths in any
spelling (the server has already decoded %2e%2e and %2f), and symlinks that lead out of the folder.

Each file gets a strong ETag (a hash of its bytes; the gzip form has its own) and Last-Modified (its
mtime); If-None-Match (or, without it, If-Modified-Since) answers 304. Cache-Control comes from
`cache_control`: a final archive page is immutable, the documents that change may be reused for a few
minutes. With WebSub hubs, the feeds (top and tags/) carry the Link headers of WebSub discovery (hub
and self). Text is gzipped when the client asks for it. Files are read whole: the output folder holds feeds
and pages of a few MB at most.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Sequence
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path, PurePosixPath

from starlette.datastructures import Headers
from starlette.responses import Response

from publisher.outputs import ARCHIVE_FEEDS, TAG_FEEDS
from publisher.render import uri

HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
ARCHIVE = "digests"
INDEX = "index.html"
PRIVATE = ("preview",)  # folders of the output that are not for readers
ARCHIVE_TYPES = {".html": HTML, ".txt": TEXT}
GZIP_FROM = 256  # bytes: smaller files are sent as they are
GZIP_LEVEL = 6
FEED_FOLDERS = (ARCHIVE_FEEDS, TAG_FEEDS)  # <folder>/<name>/<feed file>
IMMUTABLE = "public, max-age=31536000, immutable"  # a year (RFC 9111 5.2.2.1), and RFC 8246
SHORT = "public, max-age=300, s-maxage=0"  # see cache_control
REVALIDATE = "no-cache"


def cache_control(parts: Sequence[str], root: Path) -> str:
    """The Cache-Control of the served file at `parts` (its URL path, split) below the output folder `root`.

    - An RFC 5005 archive page `feed-archive/<N>/...` with a `feed-archive/<N+1>/` after it is final (a full
      page never changes): immutable for a year; readers and caches never ask again.
    - The documents that change when an article arrives (the feeds at the top, `tags/<slug>/...`, the
      newest archive page): `max-age=300`, so a browser or a reader that fetches twice in a row, or many
      tabs, hit their own cache, while a new article is seen within 5 minutes (feed readers poll every 30-60
      minutes anyway); `s-maxage=0` makes a shared cache (a CDN in front of serve) revalidate every time
      (a cheap 304 with the ETag), so a WebSub hub fetching right after the publish ping, or a new reader,
      never gets the copy from before the publish.
    - Everything else (pages, digests): `no-cache`, revalidated with the ETag on every use, as before.
    """
    if len(parts) == 3 and parts[0] == ARCHIVE_FEEDS:
        return IMMUTABLE if (root / ARCHIVE_FEEDS / str(int(parts[1]) + 1)).is_dir() else SHORT
    if (len(parts) == 1 and parts[0] != INDEX) or (len(parts) == 3 and parts[0] == TAG_FEEDS):
        return SHORT
    return REVALIDATE


def archive_number(name: str) -> bool:
    """An archive page's folder name: a page number (1, 2, ...) as the archive writes it."""
    return name.isascii() and name.isdigit() and not name.startswith("0")


def hub_link(site_url: str, hubs: Sequence[str], path: str) -> str:
    """The Link header of WebSub discovery (section 4) of the topic at `path`: each hub, and its own URL."""
    listed = "".join(f'<{uri(hub)}>; rel="hub", ' for hub in hubs)
    return f'{listed}<{uri(site_url + path)}>; rel="self"'


def top_level_types(feed_types: dict[str, str]) -> dict[str, str]:
    """file name -> media type of what is served at the top of the folder."""
    return {**feed_types, "index.html": HTML}


class OutputFolder:
    def __init__(self, root: Path, feed_types: dict[str, str], *, site_url: str = "",
                 hubs: Sequence[str] = ()) -> None:
        self.root = root
        self.feeds = feed_types  # file name -> media type, e.g. rss.xml -> application/rss+xml
        self.top = top_level_types(feed_types)
        self.site_url, self.hubs = site_url, tuple(hubs)  # WebSub discovery of the feeds publish pings

    def media_type(self, parts: list[str]) -> str | None:
        if len(parts) == 1:
            return self.top.get(parts[0])
        if parts[-1] == INDEX and parts[0] not in PRIVATE:  # a page folder: an article, an archive month
            return HTML
        if len(parts) == 2 and parts[0] == ARCHIVE:
            return ARCHIVE_TYPES.get(PurePosixPath(parts[1]).suffix)
        if len(parts) == 3 and parts[0] in FEED_FOLDERS:  # an archive page, a tag's feeds
            if parts[0] == ARCHIVE_FEEDS and not archive_number(parts[1]):
                return None
            return self.feeds.get(parts[2])
        return None

    def topic(self, parts: list[str]) -> bool:
        """Whether the file is a subscription document publish pings the hubs for: a feed at the top or a
        tag's feed (publisher/websub.py changed_feeds); archive pages are not."""
        return bool(self.hubs) and ((len(parts) == 1 and parts[0] in self.feeds) or
                                    (len(parts) == 3 and parts[0] == TAG_FEEDS and parts[2] in self.feeds))

    def locate(self, path: str) -> tuple[Path, str, str] | None:
        """(file, media type, Cache-Control) for a decoded URL path without its leading '/', or None."""
        if path.endswith("/"):  # a folder's URL is its index.html (article pages: site.url + slug/)
            path += INDEX
        parts = path.split("/") if path else [INDEX]
        if any(p in ("", ".", "..") or p.startswith(".") or any(c in p for c in "\\\0:") for p in parts):
            return None
        media = self.media_type(parts)
        if media is None:
            return None
        try:
            root = self.root.resolve(strict=True)
            target = root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not target.is_relative_to(root) or not target.is_file():
            return None
        return target, media, cache_control(parts, root)

    def respond(self, path: str, headers: Headers) -> Response | None:
        """The response for GET/HEAD of `path`, or None when there is no such file to serve."""
        found = self.locate(path)
        if found is None:
            return None
        target, media, caching = found
        try:
            with target.open("rb") as stream:
                mtime = int(os.fstat(stream.fileno()).st_mtime)
                data = stream.read()
        except OSError:
            return None
        extra = {"Cache-Control": caching}
        if media in self.feeds.values():
            extra["Access-Control-Allow-Origin"] = "*"  # feeds are public; web feed readers fetch them
        if self.topic(path.split("/")):
            extra["Link"] = hub_link(self.site_url, self.hubs, path)
        return _respond(data, mtime, media, headers, extra)


def accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip"):
            continue
        q = params.strip().replace(" ", "")
        if not q.startswith("q="):
            return True
        try:
            return float(q[2:]) > 0
        except ValueError:
            return False
    return False


def not_modified(headers: Headers, etags: set[str], mtime: int) -> bool:
    """RFC 9110 13.2.2: If-None-Match (weak comparison) decides when present, else If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or bool(tags & etags)
    since = headers.get("if-modified-since")
    if not since:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False
    return when.tzinfo is not None and mtime <= when.timestamp()


def _respond(data: bytes, mtime: int, media: str, request: Headers, extra: dict[str, str]) -> Response:
    digest = hashlib.sha256(data).hexdigest()[:40]
    identity_tag, gzip_tag = f'"{digest}"', f'"{digest}-gzip"'
    zipped = len(data) >= GZIP_FROM and accepts_gzip(request.get("accept-encoding", ""))
    headers = {"ETag": gzip_tag if zipped else identity_tag, "Last-Modified": formatdate(mtime, usegmt=True),
               "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff", **extra}
    if not_modified(request, {identity_tag, gzip_tag}, mtime):
        return Response(status_code=304, headers=headers)
    if zipped:
        headers["Content-Encoding"] = "gzip"
        data = gzip.compress(data, GZIP_LEVEL, mtime=0)
    return Response(data, media_type=media, headers=headers)
