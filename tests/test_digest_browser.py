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
    config = (REPO / "publisher.toml").read_text(encoding="utf-8")
    pinned = 'lead = "ukraine-peace-mission"\nintro = "Hello from **the editor**."\n'  # the article with an image
    config = config.replace("[digest]\n", "[digest]\n" + pinned) if "[digest]\n" in config \
        else config + "\n[digest]\n" + pinned
    (root / "publisher.toml").write_text(config, encoding="utf-8")
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
    images = page.evaluate("() => [...document.images].map(i => [i.getAttribute('alt'), i.getAttribute('width'), "
                           "i.getAttribute('height'), i.getBoundingClientRect().right])")
    assert images, "the example digest shows an article image"
    for alt, img_width, img_height, right in images:
        assert alt is not None and img_width and img_height and right <= width + 1  # alt="": decorative
    if width == 800:
        box = page.locator("div[role=article] > div").nth(1).bounding_box()
        assert box is not None and abs(box["x"] + box["width"] / 2 - width / 2) < 2, "centred column"
    page.close()


TITLES = ("African Leaders Make Passionate Plea for Peace to Putin Amidst Ukraine Conflict",
          "Drone Attacks and Putin’s Regime: Impact and Implications", "How Drones Changed Modern Warfare",
          "How to Follow This Newsletter")
STYLE = """() => [...document.querySelectorAll('a.title')].map(a => {
  const s = getComputedStyle(a);
  return {text: a.textContent.trim(), line: s.textDecorationLine, color: s.color, size: parseFloat(s.fontSize)};
})"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_titles_are_links_without_underline_the_lead_first_and_largest(browser: Browser, digest: Path,
                                                                       scheme: str) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 900}, color_scheme=scheme)  # type: ignore[arg-type]
    page.goto(digest.as_uri())
    titles: list[dict[str, Any]] = page.evaluate(STYLE)
    assert [t["text"] for t in titles] == list(TITLES), "the pinned lead first, then the others newest first"
    for title in titles:
        assert title["line"] == "none", title
        assert title["color"] not in ("rgb(0, 0, 238)", "rgb(0, 0, 0)"), "the site's colour, not the default"
    assert titles[0]["size"] > max(t["size"] for t in titles[1:])
    text = page.locator("body").inner_text()
    assert text.index("Hello,") < text.index("Hello from the editor.") < text.index(TITLES[0])
    assert "Weekly digest · 25 November 2026" in text and "Digest of" not in text
    page.close()


def test_read_more_links_name_their_article_for_screen_readers(browser: Browser, digest: Path) -> None:
    page = browser.new_page(viewport={"width": 800, "height": 900})
    page.goto(digest.as_uri())
    for title in TITLES:
        link = page.get_by_role("link", name=f"Read more about: {title}", exact=True)
        assert link.count() == 1, title
        hidden = link.locator(".sr-only").bounding_box()
        assert hidden is not None and hidden["width"] <= 1 and hidden["height"] <= 1, "heard, not seen"
        box = link.bounding_box()
        assert box is not None and box["width"] < 200, "the visible label stays short"
    page.close()
