"""The digest as a subscriber sees it: Debian's Chromium, headless, at phone and desktop widths."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import CLOCK, EXAMPLE_ARTICLES, REPO, run_cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Playwright drives Debian's chromium (no browser download); each launch gets a new, empty profile."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is required: apt-get install chromium"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def digest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE_ARTICLES, root / "articles")
    shutil.copy(REPO / "publisher.toml", root / "publisher.toml")
    run_cli("publish", "--clock", CLOCK, cwd=root, check=True)
    return root / "feeds" / "digests" / "latest.html"


LAYOUT = """() => {
  const links = [...document.querySelectorAll('a')].map(a => {
    const r = a.getBoundingClientRect();
    const style = getComputedStyle(a);
    return {text: a.textContent.trim(), href: a.href, left: r.left, right: r.right, width: r.width,
            height: r.height, visible: style.visibility !== 'hidden' && style.display !== 'none'};
  });
  return {scrollWidth: document.documentElement.scrollWidth, links};
}"""


@pytest.mark.parametrize("width", [375, 800])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_digest_fits_and_shows_every_title_and_link(browser: Browser, digest: Path, width: int,
                                                     scheme: str) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)  # type: ignore[arg-type]
    page.goto(digest.as_uri())
    layout: dict[str, Any] = page.evaluate(LAYOUT)
    assert layout["scrollWidth"] <= width, "no horizontal scrolling"
    html = digest.read_text(encoding="utf-8")
    titles = [a for a in layout["links"] if a["text"] and a["text"] in html and a["href"].startswith("https://")]
    assert len(titles) >= 8
    for link in layout["links"]:
        if not link["text"]:  # an image link: checked below
            continue
        assert link["visible"] and link["width"] > 0 and link["height"] > 0, link
        assert link["left"] >= 0 and link["right"] <= width + 1, link
    for title in ("Drone Attacks and Putin’s Regime: Impact and Implications", "How Drones Changed Modern Warfare",
                  "How to Follow This Newsletter"):
        assert page.get_by_role("link", name=title, exact=True).first.is_visible()
    images = page.evaluate("() => [...document.images].map(i => [i.alt, i.getAttribute('width'), "
                           "i.getAttribute('height'), i.getBoundingClientRect().right])")
    assert images, "the example digest shows an article image"
    for alt, img_width, img_height, right in images:
        assert alt and img_width and img_height and right <= width + 1
    if width == 800:
        box = page.locator("div[role=article] > div").nth(1).bounding_box()
        assert box is not None and abs(box["x"] + box["width"] / 2 - width / 2) < 2, "centred column"
    page.close()
