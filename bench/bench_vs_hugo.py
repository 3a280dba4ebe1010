"""publisher against Hugo, the same work in the same run on the same machine: prints both sides and ratios.

Both sides get the same corpus articles (BBC by default, copied into copy0/, copy1/, ... past its size):
publisher reads the plain-text files as they are; Hugo gets each as Markdown with front matter (title
from the first line, a date, and `keywords`: the article's 8 most frequent words of 4+ letters, so that
Hugo's `.Related` has something to relate by; it cannot rank by text).

- feeds only: publisher `publish` with `[related] count = 0` and `[site] pages = false`; Hugo with
  `outputs: home = [RSS]`, no page output, `rssLimit = 50`.
- related: publisher `publish` with its defaults (5 related links, article pages, home, digest); Hugo
  a site with a page per article listing `first 5 (.Site.RegularPages.Related .)`, a home page, RSS.
- no-op and add one: publisher `publish` again, and after adding one article (no Hugo counterpart).

Every run starts from nothing (publisher: no state, no output; Hugo: no public/, its own empty cache
dir). Times are wall-clock medians of `--runs` runs of real subprocesses; memory is each child's own
peak RSS (os.wait4). Hugo comes from apt (`apt install hugo`, 0.111 on Debian 12).

    python bench/bench_vs_hugo.py [--corpus ../shared/corpus/bbc] [--feeds-sizes 22250]
        [--related-sizes 2225] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_publish import CLOCK, CONFIG, checked, corpus_files  # bench/ is on sys.path as a script
from benchtable import Run, cli_command, number_list, run

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "bbc"
FEEDS_ONLY = "pages = false\n\n[related]\ncount = 0\n"  # appended to CONFIG's [site] table
WORD = re.compile(r"[a-z]{4,}")
STOP = frozenset([
    "that", "with", "this", "from", "have", "been", "were", "they", "will", "their", "said", "would",
    "which", "there", "about", "more", "also", "than", "what", "when", "into", "could", "after", "other",
    "some", "them", "only", "over", "such", "year", "years",
])
HUGO_CONFIG = """\
baseURL = "https://bench.example.com/"
title = "Publisher benchmark"
languageCode = "en"
rssLimit = 50
disableKinds = ["taxonomy", "term", "section", "sitemap", "robotsTXT", "404"]
"""
HUGO_FEEDS = '[outputs]\nhome = ["RSS"]\npage = []\n'
HUGO_RELATED = """\
[outputs]
home = ["HTML", "RSS"]
page = ["HTML"]

[related]
includeNewer = false
threshold = 80
toLower = true

[[related.indices]]
name = "keywords"
weight = 100

[[related.indices]]
name = "date"
weight = 10
"""
SINGLE = """<!doctype html><html><head><title>{{ .Title }}</title></head><body><h1>{{ .Title }}</h1>
{{ .Content }}<h2>Related</h2><ul>{{ range first 5 (.Site.RegularPages.Related .) }}
<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>{{ end }}</ul></body></html>
"""
HOME = """<!doctype html><html><head><title>{{ .Site.Title }}</title></head><body><ul>
{{ range first 50 .Site.RegularPages.ByDate.Reverse }}<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>
{{ end }}</ul></body></html>
"""


@dataclass(frozen=True)
class Figure:
    what: str
    publisher: list[Run]
    hugo: list[Run]


def sources(corpus: Path, files: Sequence[Path], size: int) -> list[tuple[str, Path]]:
    """(relative name, corpus file) for `size` articles, copies in copy0/.. when the corpus is smaller."""
    copies = math.ceil(size / len(files))
    out: list[tuple[str, Path]] = []
    for copy in range(copies):
        prefix = f"copy{copy}/" if copies > 1 else ""
        out += [(prefix + rel.as_posix(), corpus / rel) for rel in files[: size - len(out)]]
    return out


def publisher_site(root: Path, articles: Sequence[tuple[str, Path]], extra: str) -> None:
    root.mkdir(parents=True)
    (root / "publisher.toml").write_text(CONFIG + extra, encoding="utf-8")
    for rel, src in articles:
        target = root / "articles" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)


def keywords(text: str) -> list[str]:
    counts = Counter(w for w in WORD.findall(text.lower()) if w not in STOP)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:8]]


def hugo_page(text: str, date: datetime) -> str:
    title, _, body = text.strip().partition("\n")
    front = {"title": title.strip(), "date": date.isoformat(), "keywords": keywords(text)}
    lines = [f"{key} = {json.dumps(value)}" for key, value in front.items()]
    return "+++\n" + "\n".join(lines) + "\n+++\n\n" + body.strip() + "\n"


def hugo_site(root: Path, articles: Sequence[tuple[str, Path]], *, related: bool) -> None:
    root.mkdir(parents=True)
    (root / "config.toml").write_text(HUGO_CONFIG + (HUGO_RELATED if related else HUGO_FEEDS), encoding="utf-8")
    if related:
        layouts = root / "layouts" / "_default"
        layouts.mkdir(parents=True)
        (layouts / "single.html").write_text(SINGLE, encoding="utf-8")
        (root / "layouts" / "index.html").write_text(HOME, encoding="utf-8")
    start = datetime(2026, 11, 25, 12, tzinfo=UTC)
    for number, (rel, src) in enumerate(articles):
        target = root / "content" / "posts" / (rel.replace("/", "-").removesuffix(".txt") + ".md")
        target.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text(encoding="utf-8", errors="replace")
        target.write_text(hugo_page(text, start - timedelta(minutes=number)), encoding="utf-8")


def cold_publisher(root: Path) -> Run:
    shutil.rmtree(root / "feeds", ignore_errors=True)
    (root / "publisher.db").unlink(missing_ok=True)
    result = run([*cli_command(), "publish", "--config", str(root / "publisher.toml"), "--clock", CLOCK], root)
    checked(result, "publisher publish", summary=True)
    return result


def cold_hugo(root: Path) -> Run:
    for folder in ("public", "cache", "resources"):
        shutil.rmtree(root / folder, ignore_errors=True)
    result = run(["hugo", "--quiet", "--source", str(root), "--cacheDir", str(root / "cache")], root)
    if result.returncode:
        sys.exit(f"error: hugo exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def repeated(make: Callable[[], Run], runs: int, label: str) -> list[Run]:
    out = []
    for _ in range(runs):
        out.append(make())
        print(f"  {label}: {out[-1].seconds:7.2f} s {out[-1].max_rss_mb:7.1f} MB", flush=True)
    return out


def label(size: int, *, related: bool) -> str:
    """The name of a cold build in the printed tables."""
    return f"cold, {size:,} articles, " + ("5 related links per article" if related else "feeds only")


def compare(corpus: Path, files: Sequence[Path], size: int, runs: int, *, related: bool) -> Figure:
    articles = sources(corpus, files, size)
    what = label(size, related=related)
    print(what, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-vs-hugo-") as tmp:
        ours, hugo = Path(tmp) / "publisher", Path(tmp) / "hugo"
        publisher_site(ours, articles, "" if related else FEEDS_ONLY)
        hugo_site(hugo, articles, related=related)
        pub = repeated(lambda: cold_publisher(ours), runs, "publisher")
        hug = repeated(lambda: cold_hugo(hugo), runs, "hugo     ")
        if related:
            warm_runs(ours, articles[0][1], runs)
    return Figure(what, pub, hug)


def warm_runs(root: Path, extra: Path, runs: int) -> None:
    """The no-op re-publish (median) and the publish after adding one article, publisher only."""
    publish = [*cli_command(), "publish", "--config", str(root / "publisher.toml"), "--clock", CLOCK]
    noop = [run(publish, root) for _ in range(runs)]
    for result in noop:
        checked(result, "no-op publish", summary=True)
    shutil.copyfile(extra, root / "articles" / "added-one.txt")
    added = run(publish, root)
    checked(added, "publish after adding one", summary=True)
    print(f"  publisher no-op: {statistics.median(r.seconds for r in noop):.3f} s (median of {runs}); "
          f"add one: {added.seconds:.3f} s, {added.max_rss_mb:.0f} MB", flush=True)


def report(figures: Sequence[Figure]) -> None:
    print("\n| same work, same run | Hugo | publisher | ratio | publisher peak MB | Hugo peak MB |")
    print("|---|---|---|---|---|---|")
    for f in figures:
        ours = statistics.median(r.seconds for r in f.publisher)
        theirs = statistics.median(r.seconds for r in f.hugo)
        print(f"| {f.what} | {theirs:.2f} s | {ours:.2f} s | {ours / theirs:.2f} | "
              f"{max(r.max_rss_mb for r in f.publisher):.0f} | {max(r.max_rss_mb for r in f.hugo):.0f} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--feeds-sizes", type=number_list, default=[22250])
    parser.add_argument("--related-sizes", type=number_list, default=[2225])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("hugo") is None:
        sys.exit("error: hugo not found; install it (apt install hugo)")
    files = corpus_files(args.corpus)
    figures = [compare(args.corpus, files, n, args.runs, related=False) for n in args.feeds_sizes]
    figures += [compare(args.corpus, files, n, args.runs, related=True) for n in args.related_sizes]
    report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
