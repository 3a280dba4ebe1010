"""A new user's path: build the wheel, `publisher init`, then `publisher publish` in an empty folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import feedparser

from tests.conftest import REPO


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("publisher-*.whl")
    return wheel


def test_init_then_publish_from_the_wheel(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    assert "publisher/templates/init/publisher.toml.j2" in names
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "empty"
    work.mkdir()

    def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "publisher", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)

    where = subprocess.run([sys.executable, "-c", "import publisher; print(publisher.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(target)), "the test must run the wheel, not the checkout"
    init = cli("init", "newsite", "--clock", "2026-11-25T09:00:00Z", cwd=work)
    assert init.returncode == 0, init.stderr
    site = work / "newsite"
    assert (site / "publisher.toml").read_text().count("# ") > 10
    assert not (site / "templates").exists(), "init copies no template: the built-in ones keep their fixes"
    assert "set site.url and email.from" in init.stdout
    custom = cli("init", "custom", "--templates", "--clock", "2026-11-25T09:00:00Z", cwd=work)
    assert custom.returncode == 0, custom.stderr
    copied = sorted(p.name for p in (work / "custom" / "templates").iterdir())
    assert copied == sorted(n.rsplit("/", 1)[1] for n in names
                            if n.startswith("publisher/templates/") and n.endswith(".j2") and n.count("/") == 2)
    published = cli("publish", "--clock", "2026-11-25T12:00:00Z", cwd=site)
    assert published.returncode == 0, published.stderr
    assert "1 published" in published.stdout
    parsed = feedparser.parse((site / "feeds" / "rss.xml").read_bytes())
    assert parsed.bozo == 0 and parsed.entries[0].title == "Welcome to your new publication"
    again = cli("init", "newsite", cwd=work)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_publish_works_with_no_config_file(tmp_path: Path) -> None:
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "hello.txt").write_text("Hello\n\nWorld.\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "publisher", "publish"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert feedparser.parse((tmp_path / "feeds" / "atom.xml").read_bytes()).entries[0].title == "Hello"
    assert (tmp_path / "publisher.db").is_file()
