"""Shared fixtures: real files, a real SQLite state, the real CLI in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pgserver import PgServer

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_ARTICLES = REPO / "articles"
SEED = EXAMPLE_ARTICLES / "000_983df7f3348e2b46.txt"
CLOCK = "2026-11-25T12:00:00Z"

SITE_TOML = """\
[site]
title = "Test Site"
url = "https://example.com/"
description = "A site made by the tests"
author = "Test Author"
timezone = "UTC"
"""


def run_cli(*args: str, cwd: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `python -m publisher ARGS` in a real subprocess."""
    result = subprocess.run([sys.executable, "-m", "publisher", *args], cwd=cwd, capture_output=True,
                            text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"publisher {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


class Site:
    """A throwaway site folder: publisher.toml, articles/, and helpers to write and publish."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.articles = root / "articles"
        self.feeds = root / "feeds"
        self.state = root / "publisher.db"
        self.articles.mkdir(parents=True, exist_ok=True)
        (root / "publisher.toml").write_text(SITE_TOML, encoding="utf-8")

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.articles / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def configure(self, text: str) -> None:
        """Append TOML to the site's publisher.toml."""
        path = self.root / "publisher.toml"
        path.write_text(path.read_text(encoding="utf-8") + "\n" + text + "\n", encoding="utf-8")

    def subscribe(self, count: int) -> list[str]:
        """`count` readers added with `publisher subscribers import`; their addresses."""
        rows = [f"reader{n:04}@example.org" for n in range(count)]
        csv = self.root / "subscribers.csv"
        csv.write_text("email,name\n" + "".join(f"{a},Reader {n}\n" for n, a in enumerate(rows)), encoding="utf-8")
        result = run_cli("subscribers", "import", str(csv), cwd=self.root)
        assert result.returncode == 0, result.stderr
        return rows

    def publish(self, *args: str, clock: str = CLOCK) -> subprocess.CompletedProcess[str]:
        return run_cli("publish", "--clock", clock, *args, cwd=self.root)

    def feed_bytes(self) -> dict[str, bytes]:
        """Every file in the output folder (relative name -> bytes)."""
        return {p.relative_to(self.feeds).as_posix(): p.read_bytes() for p in sorted(self.feeds.rglob("*"))
                if p.is_file()}


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


@pytest.fixture
def seed_site(site: Site) -> Site:
    shutil.copy(SEED, site.articles / SEED.name)
    return site


@pytest.fixture
def make_site(tmp_path: Path) -> Callable[[str], Site]:
    return lambda name: Site(tmp_path / name)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="Rewrite tests/golden/ from the current output (only on purpose).")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL cluster for the whole run (see tests/pgserver.py)."""
    server = PgServer()
    server.init()
    yield server
    from publisher.state.engine import dispose_engines

    dispose_engines()
    server.close()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A SQLAlchemy URL of a new, empty PostgreSQL database of this test's own."""
    yield pg_server.new_database()
    from publisher.state.engine import dispose_engines

    dispose_engines()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """paths.state for a test that runs on both engines: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "state.sqlite")
    url: str = request.getfixturevalue("pg_url")
    return url


# --- a site whose state is on either engine: the delivery and scheduler suites on SQLite and PostgreSQL ----------

class StateSite(Site):
    """A Site whose publisher.toml names `url` in `[paths] state`: an SQLite file, or a PostgreSQL database."""

    def __init__(self, root: Path, url: str) -> None:
        super().__init__(root)
        self.url = url
        if not self.on_server:
            self.state = Path(url)
        self.configure(f'[paths]\nstate = "{url}"')

    @property
    def on_server(self) -> bool:
        return "://" in self.url

    def query(self, sql: str, **params: object) -> list[tuple[Any, ...]]:
        """Rows of `sql` read straight from the state database (either engine), on a connection of its own."""
        import sqlalchemy as sa

        url = self.url if self.on_server else f"sqlite:///{self.url}"
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def deliveries(self) -> dict[str, tuple[str, int, str | None]]:
        """address -> (status, attempts, error) of every journal row (one digest in these tests)."""
        rows = self.query("SELECT s.address, d.status, d.attempts, d.error FROM deliveries d "
                          "JOIN subscribers s ON s.id = d.subscriber_id")
        return {a: (s, int(n), e) for a, s, n, e in rows}


@pytest.fixture
def state_site(tmp_path: Path, state_url: str) -> StateSite:
    """A throwaway site on each engine in turn (see `state_url`)."""
    return StateSite(tmp_path / "site", state_url)
