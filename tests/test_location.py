"""paths.state and PUBLISHER_DATABASE_URL: a path is an SQLite file, a SQLAlchemy URL a database server;
a bad one is one line naming where it came from, and a password never appears in a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.config import load_settings
from publisher.errors import ConfigError
from publisher.state.location import locate
from tests.conftest import SITE_TOML, run_cli


def test_a_plain_path_is_an_sqlite_file_relative_to_the_config(tmp_path: Path) -> None:
    state = locate("data/publisher.db", tmp_path, {}, "x")
    assert state.is_sqlite and state.path == (tmp_path / "data" / "publisher.db").resolve()
    assert state.url.drivername == "sqlite" and state.url.database == str(state.path)


def test_a_sqlite_url_names_the_same_file_as_its_path(tmp_path: Path) -> None:
    assert locate("sqlite:///state.db", tmp_path, {}, "x").path == locate("state.db", tmp_path, {}, "x").path


@pytest.mark.parametrize("url", ["postgresql://pub:pw@db.example:5433/news", "postgresql+psycopg://pub:pw@db.example:5433/news"])
def test_a_postgresql_url_uses_psycopg_and_hides_its_password(url: str, tmp_path: Path) -> None:
    state = locate(url, tmp_path, {}, "x")
    assert not state.is_sqlite and state.path is None
    assert state.url.drivername == "postgresql+psycopg" and state.url.password == "pw"
    assert str(state) == "postgresql+psycopg://pub:***@db.example:5433/news"


def test_the_environment_url_wins_over_paths_state(tmp_path: Path) -> None:
    (tmp_path / "publisher.toml").write_text(SITE_TOML + '[paths]\nstate = "mine.db"\n', encoding="utf-8")
    plain = load_settings(tmp_path / "publisher.toml", tmp_path, {})
    assert plain.paths.state.path == (tmp_path / "mine.db").resolve()
    env = {"PUBLISHER_DATABASE_URL": "postgresql://pub@db.example/news"}
    assert load_settings(tmp_path / "publisher.toml", tmp_path, env).paths.state.path is None


@pytest.mark.parametrize(("value", "words"), [
    ("mysql://pub@db.example/news", "'mysql' is not supported"),
    ("postgresql://pub@db.example", "names no database"),
    ("sqlite://", "must name a file"),
    ("postgresql://pub@db.example:port/news", "not a SQLAlchemy URL"),
])
def test_a_bad_state_url_is_one_line_naming_the_setting(value: str, words: str, tmp_path: Path) -> None:
    (tmp_path / "publisher.toml").write_text(SITE_TOML + f'[paths]\nstate = "{value}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(tmp_path / "publisher.toml", tmp_path, {})
    assert words in str(refused.value) and "paths.state" in str(refused.value)


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path: Path) -> None:
    """Port 1 on 127.0.0.1 refuses at once: every command that opens the state says so in one line, exit 2."""
    url = "postgresql+psycopg://pub:hunter2@127.0.0.1:1/news"
    (tmp_path / "publisher.toml").write_text(SITE_TOML + f'[paths]\nstate = "{url}"\n', encoding="utf-8")
    (tmp_path / "articles").mkdir()
    for command in (["publish"], ["send"], ["subscribers", "list"]):
        result = run_cli(*command, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr and "hunter2" not in result.stderr, result.stderr
        assert "127.0.0.1:1/news" in result.stderr and "PostgreSQL server is running" in result.stderr
