"""The site's pages as a reader sees them: Debian's Chromium, headless, at phone and desktop widths, in light
and dark mode: the home page, a monthly archive page and an article page of the example site."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Route

from tests.conftest import CLOCK, EXAMPLE_ARTICLES, REPO, run_cli
from tests.test_digest_browser import browser

__all__ = ["browser"]  # the module's fixture: one Chromium for these tests too
# A picture for the example's images (its https://example.com URLs are answered here, nothing leaves the machine).
PICTURE = ('<svg xmlns="http://www.w3.org/2000/svg" width="1280" height="720"><rect width="1280" height="720" '
           'fill="#6d8fb3"/><circle cx="900" cy="260" r="140" fill="#f5d76e"/></svg>')
STYLE = """() => {
  const color = el => getComputedStyle(el).color;
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const shown = 'main p, main li, main h1, main h2, main h3, main a, main time, header a, footer p';
  const sample = [...document.querySelectorAll(shown)]
    .filter(e => e.getClientRects().length && e.textContent.trim() && !e.closest('.trap'));
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
          page: background(document.body),
          scripts: [...document.scripts].filter(s => s.type !== 'application/ld+json').length,
          text: sample.map(e => ({tag: e.tagName, text: e.textContent.trim().slice(0, 40), color: color(e),
                                  background: background(e), right: e.getBoundingClientRect().right}))};
}"""


def rgb(css: str) -> tuple[float, ...]:
    """'rgb(1, 2, 3)' or 'rgba(1, 2, 3, 1)' -> (1, 2, 3)."""
    return tuple(float(v) for v in css[css.index("(") + 1:-1].split(",")[:3])


def luminance(css: str) -> float:
    """WCAG 2 relative luminance."""
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(v) for v in rgb(css))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example site published, with a feeds.limit of 3 so that it has monthly archive pages."""
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE_ARTICLES, root / "articles")
    config = (REPO / "publisher.toml").read_text(encoding="utf-8")
    assert "limit = 50" in config
    (root / "publisher.toml").write_text(config.replace("limit = 50", "limit = 3"), encoding="utf-8")
    (root / "articles" / "cover.md").write_text(  # the newest article has an image: the home page shows it
        "---\ntitle: Winter Light Over the River\ndate: 2026-11-25T10:00:00+01:00\nimage: /images/river.jpg\n"
        "summary: Photographs from the first cold week of the year.\n---\nThe river froze at the edges.\n",
        encoding="utf-8")
    run_cli("publish", "--clock", CLOCK, cwd=root, check=True)
    return root / "feeds"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots to look at: in $PAGE_SHOTS when set, else a temporary folder."""
    folder = Path(os.environ.get("PAGE_SHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pages(output: Path) -> Iterator[tuple[str, Path]]:
    yield "home", output / "index.html"
    yield "month", output / "archive" / "2026-11" / "index.html"
    article = output / "ukraine-peace-mission" / "index.html"  # an article page (written by publish)
    if article.is_file():
        yield "article", article


def serve_pictures(route: Route) -> None:
    if route.request.url.startswith("file:"):
        route.continue_()
    elif route.request.resource_type == "image":
        route.fulfill(status=200, content_type="image/svg+xml", body=PICTURE)
    else:
        route.abort()


@pytest.mark.parametrize("width", [375, 800])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_fit_the_width_and_read_well(browser: Browser, output: Path, shots: Path, width: int,
                                           scheme: str) -> None:
    assert (output / "index.html").is_file() and (output / "archive" / "2026-11" / "index.html").is_file()
    assert 'src="https://example.com/images/river.jpg"' in (output / "index.html").read_text(encoding="utf-8")
    for name, path in pages(output):
        page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)  # type: ignore[arg-type]
        page.route("**/*", serve_pictures)
        page.goto(path.as_uri())
        page.screenshot(path=str(shots / f"{name}-{width}-{scheme}.png"), full_page=True)
        style: dict[str, Any] = page.evaluate(STYLE)
        page.close()
        assert style["scrollWidth"] <= style["innerWidth"] == width, f"{name}: no horizontal scrolling"
        assert style["scripts"] == 0, f"{name}: no JavaScript (JSON-LD data is not a script that runs)"
        page_dark = luminance(style["page"]) < 0.1
        assert page_dark == (scheme == "dark"), f"{name}: background {style['page']} in {scheme} mode"
        assert len(style["text"]) >= 5, name
        for text in style["text"]:
            assert contrast(text["color"], text["background"]) >= 4.5, (name, text)
            assert text["right"] <= width + 1, (name, text)
