"""The output folder over HTTP: the feeds, index.html and the digest archive, nothing else.

What may be served is a table: the feed files (from the table of feed formats) and index.html at the
top, `digests/<name>.html|.txt`, and the index.html of any folder but preview/ (an article's page at
`<slug>/`, an archive month), its folder's URL ending in `/`. Anything else is 404: other files
(preview/ is for the operator), folders (no listing), hidden names, `..` and absolute paths in any
spelling (the server has already decoded %2e%2e and %2f), and symlinks that lead out of the folder.

Each file gets a strong ETag (a hash of its bytes; the gzip form has its own) and Last-Modified (its
mtime); If-None-Match (or, without it, If-Modified-Since) answers 304. Text is gzipped when the client
asks for it. Files are read whole: the output folder holds feeds and pages of a few MB at most.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path, PurePosixPath

from starlette.datastructures import Headers
from starlette.responses import Response

HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
ARCHIVE = "digests"
INDEX = "index.html"
PRIVATE = ("preview",)  # folders of the output that are not for readers
ARCHIVE_TYPES = {".html": HTML, ".txt": TEXT}
GZIP_FROM = 256  # bytes: smaller files are sent as they are
GZIP_LEVEL = 6


def top_level_types(feed_types: dict[str, str]) -> dict[str, str]:
    """file name -> media type of what is served at the top of the folder."""
    return {**feed_types, "index.html": HTML}


class OutputFolder:
    def __init__(self, root: Path, feed_types: dict[str, str]) -> None:
        self.root = root
        self.feeds = feed_types  # file name -> media type, e.g. rss.xml -> application/rss+xml
        self.top = top_level_types(feed_types)

    def media_type(self, parts: list[str]) -> str | None:
        if len(parts) == 1:
            return self.top.get(parts[0])
        if parts[-1] == INDEX and parts[0] not in PRIVATE:  # a page folder: an article, an archive month
            return HTML
        if len(parts) == 2 and parts[0] == ARCHIVE:
            return ARCHIVE_TYPES.get(PurePosixPath(parts[1]).suffix)
        return None

    def locate(self, path: str) -> tuple[Path, str] | None:
        """(file, media type) for a decoded URL path without its leading '/', or None."""
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
        return target, media

    def respond(self, path: str, headers: Headers) -> Response | None:
        """The response for GET/HEAD of `path`, or None when there is no such file to serve."""
        found = self.locate(path)
        if found is None:
            return None
        target, media = found
        try:
            with target.open("rb") as stream:
                mtime = int(os.fstat(stream.fileno()).st_mtime)
                data = stream.read()
        except OSError:
            return None
        return _respond(data, mtime, media, headers, cors=path in self.feeds)


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


def _respond(data: bytes, mtime: int, media: str, request: Headers, *, cors: bool) -> Response:
    digest = hashlib.sha256(data).hexdigest()[:40]
    identity_tag, gzip_tag = f'"{digest}"', f'"{digest}-gzip"'
    zipped = len(data) >= GZIP_FROM and accepts_gzip(request.get("accept-encoding", ""))
    headers = {"ETag": gzip_tag if zipped else identity_tag, "Last-Modified": formatdate(mtime, usegmt=True),
               "Cache-Control": "no-cache", "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff"}
    if cors:
        headers["Access-Control-Allow-Origin"] = "*"  # feeds are public; web feed readers fetch them
    if not_modified(request, {identity_tag, gzip_tag}, mtime):
        return Response(status_code=304, headers=headers)
    if zipped:
        headers["Content-Encoding"] = "gzip"
        data = gzip.compress(data, GZIP_LEVEL, mtime=0)
    return Response(data, media_type=media, headers=headers)
