"""Where the state lives: `paths.state` (or PUBLISHER_DATABASE_URL, which wins) is a plain path, meaning an
SQLite file, or a SQLAlchemy URL: `postgresql+psycopg://user@host/db` (`postgresql://` means the same), or
`sqlite:///path`. The password of a URL never reaches a message or a log: `str()` hides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.errors import ConfigError

if TYPE_CHECKING:  # SQLAlchemy is imported only for a URL: settings naming a file load without it
    import sqlalchemy as sa

URL_ENV = "PUBLISHER_DATABASE_URL"
DRIVERS = {"postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg", "sqlite": "sqlite",
           "sqlite+pysqlite": "sqlite"}
EXAMPLE = "a path such as publisher.db, or a URL such as postgresql+psycopg://publisher@db.example/publisher"


@dataclass(frozen=True)
class StateLocation:
    """The state database: an SQLite file (`path`), or a database server (`path` None). `given` is the
    SQLAlchemy URL it was named by; a file named by its path gets its URL when one is asked for."""

    path: Path | None
    given: sa.URL | None = None

    @property
    def url(self) -> sa.URL:
        if self.given is not None:
            return self.given
        import sqlalchemy as sa

        return sa.make_url("sqlite://").set(database=str(self.path))

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
    return StateLocation(path.resolve())


def locate(value: str, base: Path, environ: Mapping[str, str], where: str) -> StateLocation:
    """The state named by PUBLISHER_DATABASE_URL when set, else by `value` (paths.state, relative to `base`)."""
    if environ.get(URL_ENV):
        value, where = environ[URL_ENV], URL_ENV
    if "://" not in value:
        return file_location(base / value)
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError

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
        return StateLocation(path, url.set(drivername="sqlite", database=str(path)))
    if not url.database:
        raise ConfigError(f"{where}: the state URL names no database", f"give {EXAMPLE}")
    return StateLocation(None, url.set(drivername=driver))
