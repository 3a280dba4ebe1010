"""WebSub (W3C Recommendation, section 7): the publisher's ping to each hub after a feed changed.

A hub that fails (an HTTP error, a timeout, a refused connection) is reported back as one line; it
never fails the publish.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from publisher.config import Settings
from publisher.render import FILENAMES, uri
from publisher.tagslug import TAGS_DIR

log = logging.getLogger(__name__)
TIMEOUT = 5.0  # seconds per request
RETRIES = 2  # tries after the first
BACKOFF = 0.5  # seconds before the first retry, doubled after each


@dataclass(frozen=True)
class PingFailure:
    hub: str
    feed: str
    error: str

    def __str__(self) -> str:
        return f"WebSub hub {shown(self.hub)} was not told that {self.feed} changed: {self.error}"


def shown(url: str) -> str:
    """A URL fit for a log: without the user name and password it may carry."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def changed_feeds(settings: Settings, written: Sequence[str]) -> list[str]:
    """The public URLs of the subscription documents among the files written: the site's feeds, then
    the tag feeds (tags/<slug>/<file>) by name."""
    files = {FILENAMES[fmt] for fmt in settings.feeds.formats}
    names = set(written)
    main = [settings.site.url + FILENAMES[fmt] for fmt in settings.feeds.formats if FILENAMES[fmt] in names]
    return main + [settings.site.url + uri(name) for name in sorted(names) if _tag_feed(name, files)]


def _tag_feed(name: str, files: set[str]) -> bool:
    """Whether `name` is a tag's subscription document: tags/<slug>/<one of the configured files>."""
    parts = name.split("/")
    return len(parts) == 3 and parts[0] == TAGS_DIR and bool(parts[1]) and parts[2] in files


def ping(hub: str, feed: str, *, timeout: float = TIMEOUT) -> None:
    """One publish ping; raises OSError (urllib.error.URLError, TimeoutError) unless the hub answers 2xx."""
    body = urlencode({"hub.mode": "publish", "hub.url": feed, "hub.topic": feed}).encode("ascii")
    request = urllib.request.Request(hub, data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = int(response.status)
    if not 200 <= status < 300:  # urlopen raises on 4xx/5xx; a 1xx/3xx left unfollowed ends here
        raise urllib.error.URLError(f"HTTP {status}")


def _describe(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def ping_with_retries(hub: str, feed: str, *, timeout: float = TIMEOUT, retries: int = RETRIES,
                      backoff: float = BACKOFF, sleep: Callable[[float], None] = time.sleep) -> PingFailure | None:
    """ping(), tried 1 + `retries` times with a growing pause; the last failure, or None."""
    error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            ping(hub, feed, timeout=timeout)
        except (OSError, ValueError, http.client.HTTPException) as e:  # URLError, HTTPError, TimeoutError: OSErrors
            error = e
            log.info("WebSub ping %d to %s for %s failed: %s", attempt + 1, shown(hub), feed, _describe(e))
            continue
        log.info("WebSub hub %s told that %s changed", shown(hub), feed)
        return None
    assert error is not None
    return PingFailure(hub, feed, _describe(error))


def announce(settings: Settings, written: Sequence[str], *, timeout: float = TIMEOUT) -> list[PingFailure]:
    """Ping every hub once for each changed subscription document; the pings that failed."""
    feeds = changed_feeds(settings, written)
    failures = []
    for hub in settings.feeds.hubs:
        for feed in feeds:
            if (failure := ping_with_retries(hub, feed, timeout=timeout)) is not None:
                failures.append(failure)
    return failures
