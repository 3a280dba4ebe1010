"""The least a cold build can cost with publisher's required parts, against issue 13's cold targets
(half of Hugo's time for the same work), measured in one run on this machine.

For each cold build of bench_vs_hugo (feeds only at 22,250 articles, 5 related links at 2,225) it
measures, beside Hugo's build of the same articles:

- imports: a bare interpreter importing only the required libraries the build needs (feedgen, Jinja2,
  nh3; mjml-python too where a digest is made), wall time of a subprocess, median of 5;
- parse: CPU seconds of publisher's own reading of every article (`pipeline.read_one`), one process;
- read + nh3: of that, the part no parser can skip: opening, reading and decoding each file, and nh3
  (the HTML sanitizer) cleaning the article's HTML;
- feedgen: CPU seconds of feedgen writing every article once into RSS and once into Atom, in documents
  of 100 (the archive pages), with only the calls each item needs (id, title, link, dates, content);
- rank (related only): wall time of `related.rank_all`, 5 links for every article;
- pages (related only): wall time of writing a page per article as publisher writes any file (a folder
  per page, a temporary file renamed into place), with the median page size of that build.

The floor assumes the CPU work splits perfectly over every core and that nothing else costs anything
(no state, no pages, no writing): imports + (parse + feedgen) / cores [+ rank]. It is a lower bound of
any build made of these parts; when it is above the target, no tuning of the rest reaches the target.
The budget is what the target leaves each article in CPU time on all cores after the imports:
(target - imports) x cores / articles, beside what feedgen, reading and nh3 alone take of each.

    python bench/bench_floor.py [--corpus ../shared/corpus/bbc] [--feeds-size 22250]
        [--related-size 2225] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_publish import corpus_files  # bench/ is on sys.path as a script
from bench_vs_hugo import (
    DEFAULT_CORPUS,
    FEEDS_ONLY,
    cold_hugo,
    cold_publisher,
    hugo_site,
    label,
    publisher_site,
    repeated,
    sources,
)
from benchtable import run

FEEDS_IMPORTS = "import feedgen.feed, jinja2, nh3"
RELATED_IMPORTS = FEEDS_IMPORTS + ", mjml"
DOCUMENT = 100  # items per archive document
IMPORT_RUNS = 5


@dataclass(frozen=True)
class Floor:
    what: str
    hugo: float
    publisher: float
    parts: dict[str, float]  # name -> seconds (CPU parts already divided by the cores)
    articles: int
    cores: int
    given: float  # CPU seconds of the parts no parser skips: feedgen, reading the files, nh3

    @property
    def target(self) -> float:
        return self.hugo / 2

    @property
    def floor(self) -> float:
        return sum(self.parts.values())

    def per_article(self, seconds: float) -> float:
        """CPU seconds -> microseconds an article."""
        return seconds / self.articles * 1e6

    @property
    def budget(self) -> float:
        """CPU microseconds an article may take, on all cores, for the build to meet the target."""
        return self.per_article((self.target - self.parts["imports"]) * self.cores)


def import_wall(imports: str, cwd: Path) -> float:
    """Median wall time of a fresh interpreter doing only `imports` (bytecode already compiled)."""
    command = [sys.executable, "-c", imports]
    run(command, cwd)  # compiles and caches bytecode, as pip does at install
    return statistics.median(run(command, cwd).seconds for _ in range(IMPORT_RUNS))


def parsed(root: Path) -> tuple[float, list[tuple[str, str, str, datetime]]]:
    """CPU seconds of reading every article of the site at `root`, and (slug, title, html, date) of each."""
    from publisher.config import load_settings
    from publisher.load import EXTENSIONS, scan_checked
    from publisher.pipeline import read_one

    settings = load_settings(root / "publisher.toml", root)
    files, _ = scan_checked(settings.paths.articles, EXTENSIONS)
    read_one(files[0], settings.site)  # imports done before the clock starts
    start = time.process_time()
    results = [read_one(f, settings.site) for f in files]
    cpu = time.process_time() - start
    when = datetime(2026, 11, 25, 12, tzinfo=UTC)
    items = [(r[1].slug, r[1].title, r[2], when - timedelta(minutes=n))
             for n, r in enumerate(results) if isinstance(r, tuple)]
    return cpu, items


def read_and_clean_cpu(root: Path, items: Sequence[tuple[str, str, str, datetime]]) -> float:
    """CPU seconds of reading and decoding every article file and of nh3 cleaning each article's HTML."""
    import nh3

    files = sorted(p for p in (root / "articles").rglob("*.txt"))
    start = time.process_time()
    for path in files:
        path.read_bytes().decode("utf-8", "replace")
    for _, _, html, _ in items:
        nh3.clean(html)
    return time.process_time() - start


def feedgen_cpu(items: Sequence[tuple[str, str, str, datetime]]) -> float:
    """CPU seconds of feedgen writing every item into RSS and Atom documents of DOCUMENT items."""
    from feedgen.feed import FeedGenerator

    start = time.process_time()
    for first in range(0, len(items), DOCUMENT):
        fg = FeedGenerator()
        fg.id("https://bench.example.com/")
        fg.title("Publisher benchmark")
        fg.link(href="https://bench.example.com/", rel="alternate")
        fg.description("Publisher benchmark")
        for slug, title, html, when in items[first:first + DOCUMENT]:
            fe = fg.add_entry(order="append")
            fe.id(f"https://bench.example.com/{slug}/")
            fe.title(title)
            fe.link(href=f"https://bench.example.com/{slug}/")
            fe.published(when)
            fe.updated(when)
            fe.content(html, type="html")
        fg.rss_str(pretty=True)
        fg.atom_str(pretty=True)
    return time.process_time() - start


def rank_wall(items: Sequence[tuple[str, str, str, datetime]]) -> float:
    from publisher.enrich import plain_text
    from publisher.enrich.related import RankDoc, rank_all

    docs = [RankDoc(slug, title, plain_text(html), (), when.timestamp()) for slug, title, html, when in items]
    start = time.perf_counter()
    rank_all(docs, 5, include_newer=False)
    return time.perf_counter() - start


def pages_wall(folder: Path, count: int, size: int) -> float:
    """Wall time of writing `count` pages of `size` bytes, each in its own new folder, atomically."""
    body = b"x" * size
    start = time.perf_counter()
    for number in range(count):
        page = folder / f"page-{number}"
        page.mkdir()
        handle, temp = tempfile.mkstemp(dir=page, prefix=".index.html.")
        with os.fdopen(handle, "wb") as file:
            file.write(body)
        os.replace(temp, page / "index.html")
    return time.perf_counter() - start


def median_page(root: Path) -> int:
    sizes = [p.stat().st_size for p in (root / "feeds").rglob("index.html")]
    return int(statistics.median(sizes)) if sizes else 0


def measure(corpus: Path, files: Sequence[Path], size: int, runs: int, *, related: bool) -> Floor:
    what = label(size, related=related)
    print(what, flush=True)
    cores = os.cpu_count() or 1
    articles = sources(corpus, files, size)
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        ours, hugo = Path(tmp) / "publisher", Path(tmp) / "hugo"
        publisher_site(ours, articles, "" if related else FEEDS_ONLY)
        hugo_site(hugo, articles, related=related)
        theirs = statistics.median(r.seconds for r in repeated(lambda: cold_hugo(hugo), runs, "hugo     "))
        mine = statistics.median(r.seconds for r in repeated(lambda: cold_publisher(ours), runs, "publisher"))
        imports = import_wall(RELATED_IMPORTS if related else FEEDS_IMPORTS, Path(tmp))
        parse, items = parsed(ours)
        feedgen, given = feedgen_cpu(items), read_and_clean_cpu(ours, items)
        parts = {"imports": imports, f"parse / {cores} cores": parse / cores,
                 f"feedgen / {cores} cores": feedgen / cores}
        if related:
            parts["rank"] = rank_wall(items)
            (Path(tmp) / "pages").mkdir()
            parts[f"pages / {cores} cores"] = pages_wall(Path(tmp) / "pages", len(items), median_page(ours)) / cores
    for name, seconds in parts.items():
        print(f"  {name}: {seconds:.2f} s", flush=True)
    return Floor(what, theirs, mine, parts, len(items), cores, feedgen + given)


def report(floors: Sequence[Floor]) -> None:
    print("\n| cold build | Hugo | target (0.5x Hugo) | floor: its parts | floor | publisher today | floor vs target "
          "| budget an article | feedgen + read + nh3 an article |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in floors:
        parts = ", ".join(f"{name} {seconds:.2f}" for name, seconds in f.parts.items())
        verdict = f"{f.floor / f.target:.1f}x the target" if f.floor > f.target else "below the target"
        print(f"| {f.what} | {f.hugo:.2f} s | {f.target:.2f} s | {parts} | {f.floor:.2f} s | {f.publisher:.2f} s "
              f"| {verdict} | {f.budget:.0f} us | {f.per_article(f.given):.0f} us |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--feeds-size", type=int, default=22250)
    parser.add_argument("--related-size", type=int, default=2225)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("hugo") is None:
        sys.exit("error: hugo not found; install it (apt install hugo)")
    files = corpus_files(args.corpus)
    floors = [measure(args.corpus, files, args.feeds_size, args.runs, related=False),
              measure(args.corpus, files, args.related_size, args.runs, related=True)]
    report(floors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
