"""publisher.toml -> frozen, validated settings.

The schema is one table (section -> key -> Field). Every value is checked once, at start; an unknown
key is rejected with the closest valid one. Paths are relative to the config file's folder. The checks
themselves (header-bound values, site.url, ...) are in publisher.config_checks.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from publisher import config_checks as checks
from publisher.config_checks import FEED_FORMATS, Check
from publisher.cron import (
    DEFAULT_CRON,
    ScheduleSettings,
    check_cron,
    check_duration,
    check_timezone_or_empty,
)
from publisher.errors import ConfigError
from publisher.state.location import StateLocation, locate

CONFIG_NAME = "publisher.toml"


@dataclass(frozen=True)
class Field:
    kind: type
    default: Any
    doc: str
    check: Check | None = None


SCHEMA: dict[str, dict[str, Field]] = {
    "site": {
        "title": Field(str, "My Publication", "the name readers see in their feed reader", checks.header_text),
        "url": Field(str, "http://localhost:8080/", "public base URL of the site (ASCII: an IDN host in its "
                                                    "xn-- form)", checks.site_url),
        "description": Field(str, "Articles and newsletter", "one sentence about the site"),
        "language": Field(str, "en", "language tag of the articles", checks.language),
        "author": Field(str, "", "default author of articles that name none"),
        "timezone": Field(str, "UTC", "IANA timezone for dates without an offset", checks.timezone),
        "permalink": Field(str, "{slug}/", "article URL below site.url; {slug} is the article's slug",
                           checks.permalink),
        "pages": Field(bool, True, "write an HTML page per article at its URL (off when your blog has them)"),
    },
    "paths": {
        "articles": Field(str, "articles", "folder of .txt and .md articles"),
        "output": Field(str, "feeds", "folder the feeds are written to"),
        "state": Field(str, "publisher.db", "state database: an SQLite file, or a SQLAlchemy URL such as "
                                            "postgresql+psycopg://user@host/db (PUBLISHER_DATABASE_URL wins)"),
        "templates": Field(str, "templates", "folder whose templates override the built-in ones"),
    },
    "feeds": {
        "limit": Field(int, 50, "newest articles in each feed", checks.positive),
        "formats": Field(list, list(FEED_FORMATS), "feeds to write: rss, atom, json", checks.feed_formats),
        "hubs": Field(list, [], "WebSub hubs to announce in the feeds and ping after a publish", checks.hub_urls),
        "archive_page": Field(int, 100, "articles per RFC 5005 archive document (older than the feeds hold)",
                              checks.positive),
        "tag_min": Field(int, 1, "articles a tag needs to get its own feeds (tags/<tag>/); 0 = no tag feeds",
                         checks.non_negative),
    },
    "related": {
        "count": Field(int, 5, "related articles ranked for each article", checks.non_negative),
        "in_digest": Field(int, 3, "related links under each article in the digest", checks.non_negative),
        "include_newer": Field(bool, False, "may an article link to newer ones (its links then change)"),
        "threshold": Field(float, 0.02, "lowest similarity score (0 to 1) worth a link", checks.fraction),
        "in_feeds": Field(bool, True, "end each feed item with a 'Related reading' list"),
    },
    "digest": {
        "max_articles": Field(int, 10, "newest new articles in one digest", checks.positive),
        "full_text": Field(bool, False, "whole articles in the digest instead of summaries"),
        "max_kb": Field(int, 100, "HTML size limit in KB (Gmail clips at about 102 KB)", checks.positive),
        "font_family": Field(str, "Helvetica, Arial, sans-serif", "CSS font stack of the digest"),
        "web_fonts": Field(list, [], "stylesheet URLs of web fonts to link (none by default)", checks.stylesheet_urls),
        "intro": Field(str, "", "a short introduction at the top of every digest (Markdown; empty: none)"),
        "lead": Field(str, "", "slug of the article to lead the next digest (empty: the newest)"),
    },
    "email": {
        "from": Field(str, "", "sender, e.g. 'Example News <news@example.com>' (default: site title, "
                               "noreply@ the site's host)", checks.mailbox),
        "reply_to": Field(str, "", "Reply-To address (default: none)", checks.mailbox),
        "subject": Field(str, "{site}: {title}[ and {more} more]",
                         "subject line; {site} site title, {title} lead article, {count} articles, {more} the "
                         "others (count - 1), {date} digest date; [ and {more} more] is left out when it is 0",
                         checks.subject),
        "postal_address": Field(str, "", "sender's postal address, shown in the digest footer"),
        "transport": Field(str, "outbox", "outbox (.eml files) or smtp", checks.one_of("outbox", "smtp")),
        "outbox": Field(str, "outbox", "folder of the outbox transport, relative to the config file"),
        "rate": Field(float, 0.0, "messages per second at most, for all senders (send --worker) together; "
                                  "0 = unlimited", checks.non_negative),
        "domain_rate": Field(float, 0.0, "messages per second to any one recipient domain, for all workers "
                                         "together; 0 = unlimited", checks.non_negative),
        "max_bounces": Field(int, 3, "permanent failures before a subscriber becomes bounced", checks.positive),
        "max_retries": Field(int, 3, "tries of a temporarily refused message in one run", checks.positive),
        "max_attempts": Field(int, 10, "tries of a message over all runs (SMTP 4xx, or not buildable); then it "
                              "is expired", checks.positive),
        "max_connection_failures": Field(int, 10, "consecutive connection failures that stop a run",
                                         checks.positive),
        "smtputf8": Field(bool, False, "accept subscribers whose address has a non-ASCII local part "
                                       "(jörg@example.org); set it only when your SMTP server offers SMTPUTF8"),
        "secret": Field(str, "", "unsubscribe token key; prefer the PUBLISHER_SECRET environment variable "
                                 "(empty: a random key kept in the state database)"),
    },
    "email.smtp": {
        "host": Field(str, "localhost", "SMTP server"),
        "port": Field(int, 587, "SMTP port", checks.positive),
        "security": Field(str, "starttls", "starttls, tls or none", checks.one_of("starttls", "tls", "none")),
        "username": Field(str, "", "login name (the password comes from PUBLISHER_SMTP_PASSWORD)"),
        "timeout": Field(float, 30.0, "seconds to wait for the server", checks.non_negative),
    },
    "schedule": {
        "cron": Field(str, DEFAULT_CRON, "when to publish: minute hour day-of-month month day-of-week (standard "
                                         "cron, names accepted; an optional leading seconds field)", check_cron),
        "timezone": Field(str, "", "IANA timezone of the cron (empty: site.timezone)", check_timezone_or_empty),
        "catch_up": Field(str, "6h", "how late a run missed while stopped may still start (90s, 30m, 6h, 1d)",
                          check_duration),
        "jitter": Field(int, 0, "each run starts up to this many seconds later, at random (0: off)",
                        checks.non_negative),
    },
    "web": {
        "confirm_hours": Field(int, 48, "hours a subscription confirmation link works", checks.positive),
        "subscribe_limit": Field(int, 10, "subscribe attempts per client address within subscribe_window",
                                 checks.positive),
        "subscribe_window": Field(int, 900, "seconds over which subscribe_limit counts", checks.positive),
        "welcome": Field(bool, True, "send a welcome email with the latest digest's link once a reader confirms"),
    },
    "email.dkim": {
        "selector": Field(str, "", "DKIM selector; DKIM signing is on when selector, domain and key are set"),
        "domain": Field(str, "", "DKIM signing domain"),
        "private_key": Field(str, "", "path of the PEM private key, relative to the config file"),
    },
}


@dataclass(frozen=True)
class SiteSettings:
    title: str
    url: str
    description: str
    language: str
    author: str
    timezone: str
    permalink: str
    pages: bool = True

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def page_url(self, slug: str) -> str:
        """The public URL of an article: a URI (a non-ASCII slug is percent-encoded, RFC 3987 section 3.1)."""
        return self.url + self.permalink.replace("{slug}", quote(slug, safe=""))


@dataclass(frozen=True)
class PathSettings:
    articles: Path
    output: Path
    state: StateLocation
    templates: Path


@dataclass(frozen=True)
class FeedSettings:
    limit: int
    formats: tuple[str, ...]
    hubs: tuple[str, ...] = ()
    archive_page: int = 100
    tag_min: int = 1


@dataclass(frozen=True)
class RelatedSettings:
    count: int
    in_digest: int
    include_newer: bool
    threshold: float
    in_feeds: bool


@dataclass(frozen=True)
class DigestSettings:
    max_articles: int
    full_text: bool
    max_kb: int
    font_family: str
    web_fonts: tuple[str, ...]
    intro: str
    lead: str


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str
    username: str
    timeout: float


@dataclass(frozen=True)
class DkimSettings:
    selector: str
    domain: str
    private_key: Path | None

    @property
    def enabled(self) -> bool:
        return bool(self.selector and self.domain and self.private_key)


@dataclass(frozen=True)
class EmailSettings:
    sender: str
    reply_to: str
    subject: str
    postal_address: str
    transport: str
    outbox: Path
    rate: float
    domain_rate: float
    max_bounces: int
    max_retries: int
    max_attempts: int
    max_connection_failures: int
    smtputf8: bool
    secret: str = field(repr=False)  # never in a log or an error
    smtp: SmtpSettings
    dkim: DkimSettings


@dataclass(frozen=True)
class WebSettings:
    confirm_hours: int
    subscribe_limit: int
    subscribe_window: int
    welcome: bool


@dataclass(frozen=True)
class Settings:
    site: SiteSettings
    paths: PathSettings
    feeds: FeedSettings
    related: RelatedSettings
    digest: DigestSettings
    email: EmailSettings
    schedule: ScheduleSettings
    web: WebSettings
    source: Path | None  # the config file, or None for built-in defaults


def _closest(word: str, choices: list[str]) -> str:
    import difflib  # only for a bad key

    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f"; valid keys: {', '.join(choices)}"


def _check_value(where: str, key: str, field: Field, value: Any) -> Any:
    is_bool = isinstance(value, bool)
    if field.kind is float and isinstance(value, int) and not is_bool:
        value = float(value)
    if not isinstance(value, field.kind) or (is_bool and field.kind is not bool):
        raise ConfigError(f"{where}: '{key}' must be {field.kind.__name__}, not {type(value).__name__}",
                          f"for example {key} = {field.default!r}")
    if field.check and (problem := field.check(value)):
        raise ConfigError(f"{where}: '{key}' = {value!r} {problem}")
    return value


def _section(where: str, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    fields = SCHEMA[name]
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{where}: unknown key '{name}.{key}'{_closest(key, list(fields))}")
    return {key: _check_value(where, f"{name}.{key}", f, raw.get(key, f.default))
            for key, f in fields.items()}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: config file not found", "check --config, or run 'publisher init'") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


def _flatten(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """[email.smtp] arrives as raw["email"]["smtp"]: make it raw["email.smtp"], like the schema."""
    flat: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in SCHEMA:
            raise ConfigError(f"{where}: unknown section [{name}]{_closest(name, list(SCHEMA))}")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{name}' must be a table ([{name}])")
        flat[name] = {k: v for k, v in value.items() if f"{name}.{k}" not in SCHEMA}
        for key, sub in value.items():
            if f"{name}.{key}" in SCHEMA:
                if not isinstance(sub, dict):
                    raise ConfigError(f"{where}: '{name}.{key}' must be a table ([{name}.{key}])")
                flat[f"{name}.{key}"] = sub
    return flat


def _validate(raw: Mapping[str, Any], where: str, base: Path, source: Path | None,
              environ: Mapping[str, str]) -> Settings:
    raw = _flatten(raw, where)
    values = {name: _section(where, name, raw.get(name, {})) for name in SCHEMA}
    site = values["site"]
    site["url"] = site["url"] if site["url"].endswith("/") else site["url"] + "/"
    paths: dict[str, Any] = {k: (base / v).resolve() for k, v in values["paths"].items() if k != "state"}
    paths["state"] = locate(values["paths"]["state"], base, environ, f"{where}: 'paths.state'")
    feeds = values["feeds"]
    return Settings(
        site=SiteSettings(**site),
        paths=PathSettings(**paths),
        feeds=FeedSettings(limit=feeds["limit"], formats=tuple(dict.fromkeys(feeds["formats"])),
                           hubs=tuple(dict.fromkeys(feeds["hubs"])), archive_page=feeds["archive_page"],
                           tag_min=feeds["tag_min"]),
        related=RelatedSettings(**values["related"]),
        digest=DigestSettings(**{**values["digest"], "web_fonts": tuple(values["digest"]["web_fonts"])}),
        email=_email(values, base, site["title"], site["url"]),
        schedule=ScheduleSettings(**{**values["schedule"],
                                     "timezone": values["schedule"]["timezone"] or site["timezone"]}),
        web=WebSettings(**values["web"]),
        source=source,
    )


def quote_phrase(text: str) -> str:
    """`text` ready for a quoted string of a mail header (email.utils.quote, without importing the email
    package at start): backslash and double quote as quoted pairs."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _email(values: dict[str, dict[str, Any]], base: Path, title: str, url: str) -> EmailSettings:
    email = dict(values["email"])
    host = urlsplit(url).hostname or "localhost"
    host = f"[IPv6:{host}]" if ":" in host else host  # an address literal (RFC 5321)
    sender = email.pop("from") or f'"{quote_phrase(title)}" <noreply@{host}>'
    dkim = dict(values["email.dkim"])
    dkim["private_key"] = (base / dkim["private_key"]).resolve() if dkim["private_key"] else None
    return EmailSettings(sender=sender, **{**email, "outbox": (base / email["outbox"]).resolve()},
                         smtp=SmtpSettings(**values["email.smtp"]), dkim=DkimSettings(**dkim))


def load_settings(config: Path | None, cwd: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `config` (or ./publisher.toml when it exists, else the built-in defaults); `environ` (default:
    the process environment) may name the state with PUBLISHER_DATABASE_URL."""
    environ = os.environ if environ is None else environ
    if config is None:
        candidate = cwd / CONFIG_NAME
        if not candidate.is_file():
            return _validate({}, "built-in defaults", cwd.resolve(), None, environ)
        config = candidate
    config = config.resolve()
    return _validate(_read_toml(config), str(config), config.parent, config, environ)


def defaults() -> dict[str, dict[str, Field]]:
    """The schema, for `publisher init` and the docs."""
    return SCHEMA
