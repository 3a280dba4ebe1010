"""Settings of the web service ([web] plus fixed limits), and the check that site.url can be reached
by the people it is for."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from publisher.config import Settings
from publisher.errors import ConfigError
from publisher.safety import is_local, is_loopback


@dataclass(frozen=True)
class WebOptions:
    confirm_hours: int = 48  # how long a confirmation link works
    subscribe_limit: int = 10  # subscribe attempts (POST /subscribe) per client address ...
    subscribe_window: int = 900  # ... within this many seconds
    emails_per_address: int = 3  # confirmation emails to one address ...
    email_window: int = 86_400  # ... within this many seconds (no one's inbox can be flooded)


def web_options(settings: Settings) -> WebOptions:
    """The [web] settings and the fixed limits."""
    web = settings.web
    return WebOptions(confirm_hours=web.confirm_hours, subscribe_limit=web.subscribe_limit,
                      subscribe_window=web.subscribe_window)


def check_public_url(settings: Settings, host: str) -> None:
    """ConfigError naming site.url when the server answers other machines (`host` is not a loopback
    address) while site.url, the base of every link in feeds, emails and pages, points to this machine."""
    if is_loopback(host):
        return
    if is_local(urlsplit(settings.site.url).hostname or ""):
        where = settings.source or "built-in defaults"
        raise ConfigError(f"{where}: site.url = {settings.site.url!r} points to this machine, but 'serve --host "
                          f"{host}' answers other machines: the links in feeds, emails and pages would not work "
                          f"for them", "set site.url to the public address, e.g. https://news.example.com/")
