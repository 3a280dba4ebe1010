"""Where the state lives: `paths.state` (or PUBLISHER_DATABASE_URL, which wins) is a plain path, meaning an
SQLite file, or a SQLAlchemy URL: `postgresql+psycopg://user@host/db` (`postgresql://` means the same), or
`sqlite:///path`. The password of a URL never reaches a message or a log: `str()` hides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

from publisher.errors import ConfigError

URL_ENV = "PUBLISHER_DATABASE_URL"
DRIVERS = {"postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg", "sqlite": "sqlite",
           "sqlite+pysqlite": "sqlite"}
EXAMPLE = "a path such as publisher.db, or a URL such as postgresql+psycopg://publisher@db.example/publisher"


@dataclass(frozen=True)
class StateLocation:
    """The state database: an SQLite file (`path`), or a database server (`path` None)."""

    url: sa.URL
    path: Path | None

    @property
    def is_sqlite(self) -> bool:
        return self.path is not None

    @property
    def lock_base(self) -> Path | None:
        """The path lock files are named after (SQLite only: a file lock cannot see another machine)."""
        return self.path

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        return self.url.render_as_string(hide_password=True)


def file_location(path: Path) -> StateLocation:
    """An SQLite state file as a StateLocation."""
    path = path.resolve()
    return StateLocation(sa.make_url("sqlite://").set(database=str(path)), path)


def locate(value: str, base: Path, environ: Mapping[str, str], where: str) -> StateLocation:
    """The state named by PUBLISHER_DATABASE_URL when set, else by `value` (paths.state, relative to `base`)."""
    if environ.get(URL_ENV):
        value, where = environ[URL_ENV], URL_ENV
    if "://" not in value:
        return file_location(base / value)
    try:
        url = sa.make_url(value)
    except (ArgumentError, ValueError) as e:
        raise ConfigError(f"{where}: the state URL is not a SQLAlchemy URL", f"give {EXAMPLE}") from e
    driver = DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError(f"{where}: the state database '{url.drivername}' is not supported",
                          f"give {EXAMPLE}")
    if driver == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError(f"{where}: an SQLite state URL must name a file", "give sqlite:///path/to/publisher.db")
        path = (base / url.database).resolve()
        return StateLocation(url.set(drivername="sqlite", database=str(path)), path)
    if not url.database:
        raise ConfigError(f"{where}: the state URL names no database", f"give {EXAMPLE}")
    return StateLocation(url.set(drivername=driver), None)
