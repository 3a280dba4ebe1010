"""Benchmark `publisher publish` on the BBC corpus: cold and no-op publish, peak memory, --help start-up.

Every figure is measured on a real subprocess of the installed CLI. The script waits for each child
with os.wait4(), which returns the resource usage of that one child, so `ru_maxrss` is the peak
resident memory of that run only (not the running maximum over all children that
resource.getrusage(RUSAGE_CHILDREN) would give).

    /work/venv/bin/python bench/bench_publish.py [--corpus ../shared/corpus/bbc] [--sizes 2225,22250]
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchtable import (  # bench/ is on sys.path when run as a script
    Row,
    Run,
    cli_command,
    number_list,
    print_table,
    run,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "bbc"
DEFAULT_SIZES = (2225, 22250)
CLOCK = "2026-11-25T12:00:00Z"
NOOP_RUNS = 3
ADD_RUNS = 3  # add-one runs, one after another (median)
HELP_RUNS = 10
SUMMARY = re.compile(r"^\d+ articles read, \d+ published, \d+ skipped with errors.*; [\d.]+ s$", re.MULTILINE)
NOOP_WRITES = re.compile(r"\b(?:written|would write): (\d+)")
CONFIG = """\
[site]
title = "Publisher benchmark"
url = "https://bench.example.com/"
timezone = "UTC"
"""

# Appended to CONFIG's [site] table: the same work as Hugo's feeds (bench_vs_hugo.py), no article pages and
# no related-reading ranking.
FEEDS_ONLY = "pages = false\n\n[related]\ncount = 0\n"

# Targets, in seconds or MB; keyed by corpus size where they depend on it (issue 13). The cold builds'
# targets are ratios to Hugo in the same run: bench_vs_hugo.py measures both sides.
COLD_TARGETS: dict[int, tuple[float, str]] = {}
FULL_TARGETS: dict[int, tuple[float, str]] = {}
ADD_TARGET = 1.0
NOOP_TARGETS = {2225: 0.3, 22250: 0.3}
MEMORY_TARGET_MB = 400.0
HELP_TARGET = 0.15


class BenchError(Exception):
    """A run that did not exit 0 or did not print its summary line."""


@dataclass(frozen=True)
class SizeResult:
    size: int
    cold_seconds: float
    cold_summary: str
    cold_rss_mb: float
    cold_runs: tuple[float, ...]
    noop_seconds: float
    noop_summary: str
    noop_runs: tuple[float, ...]
    full_seconds: float
    full_rss_mb: float
    add_seconds: float


def checked(result: Run, what: str, *, summary: bool) -> str:
    """The summary line of a successful run; BenchError if it failed or printed none."""
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
        raise BenchError(f"{what} exited {result.returncode}:\n{tail}")
    if not summary:
        return ""
    match = SUMMARY.search(result.stdout)
    if not match:
        raise BenchError(f"{what} printed no summary line; stdout was:\n{result.stdout.strip()}")
    return match.group(0)


def corpus_files(corpus: Path) -> list[Path]:
    if not corpus.is_dir():
        sys.exit(f"error: corpus folder {corpus} not found; pass --corpus PATH (layout: <category>/<id>.txt)")
    files = sorted(p.relative_to(corpus) for p in corpus.rglob("*.txt") if p.is_file())
    if not files:
        sys.exit(f"error: no .txt files under {corpus}; pass --corpus PATH (layout: <category>/<id>.txt)")
    return files


def build_site(root: Path, corpus: Path, files: Sequence[Path], size: int) -> None:
    """publisher.toml plus articles/ with `size` corpus files, in copy0/..copyN/ when it takes several copies."""
    (root / "publisher.toml").write_text(CONFIG + FEEDS_ONLY, encoding="utf-8")
    articles = root / "articles"
    copies = math.ceil(size / len(files))
    made = 0
    for copy in range(copies):
        base = articles / f"copy{copy}" if copies > 1 else articles
        for rel in files[: size - made]:
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(corpus / rel, target)
        made += min(len(files), size - made)


def bench_size(corpus: Path, files: Sequence[Path], size: int, cli: Sequence[str], cold_runs: int) -> SizeResult:
    root = Path(tempfile.mkdtemp(prefix=f"publisher-bench-{size}-"))
    try:
        build_site(root, corpus, files, size)
        publish = [*cli, "publish", "--config", str(root / "publisher.toml"), "--clock", CLOCK]

        colds: list[Run] = []
        cold_summary = ""
        for i in range(cold_runs):
            if i:  # start again from nothing: no state database, no feeds
                (root / "publisher.db").unlink(missing_ok=True)
                shutil.rmtree(root / "feeds", ignore_errors=True)
            cold = run(publish, root)
            cold_summary = checked(cold, f"cold publish {i + 1} of {size:,} articles", summary=True)
            print(f"  cold   {size:>6,}: {cold.seconds:6.2f} s, {cold.max_rss_mb:6.1f} MB | {cold_summary}")
            colds.append(cold)

        (root / "publisher.db").unlink(missing_ok=True)  # again from nothing, with related reading on
        shutil.rmtree(root / "feeds", ignore_errors=True)
        (root / "publisher.toml").write_text(CONFIG, encoding="utf-8")
        full = run(publish, root)
        full_summary = checked(full, f"cold publish of {size:,} articles with related reading", summary=True)
        print(f"  full   {size:>6,}: {full.seconds:6.2f} s, {full.max_rss_mb:6.1f} MB | {full_summary}")

        noops: list[Run] = []
        noop_summary = ""
        for i in range(NOOP_RUNS):
            noop = run(publish, root)
            noop_summary = checked(noop, f"no-op publish {i + 1} of {size:,} articles", summary=True)
            print(f"  no-op  {size:>6,}: {noop.seconds:6.2f} s, {noop.max_rss_mb:6.1f} MB | {noop_summary}")
            written = NOOP_WRITES.search(noop_summary)
            if written and written.group(1) != "0":
                print(f"  warning: the no-op run wrote {written.group(1)} files; nothing had changed")
            noops.append(noop)
        adds: list[Run] = []
        for i in range(ADD_RUNS):  # each run adds one more article (a corpus file under a new name)
            shutil.copyfile(corpus / files[i], root / "articles" / f"added-{i + 1}.txt")
            added = run(publish, root)
            added_summary = checked(added, f"publish of one added article to {size + i:,}", summary=True)
            print(f"  add 1  {size + i:>6,}: {added.seconds:6.2f} s, {added.max_rss_mb:6.1f} MB | {added_summary}")
            adds.append(added)
        cold_times = tuple(r.seconds for r in colds)
        times = tuple(r.seconds for r in noops)
        return SizeResult(size, statistics.median(cold_times), cold_summary, max(r.max_rss_mb for r in colds),
                          cold_times, statistics.median(times), noop_summary, times, full.seconds,
                          full.max_rss_mb, statistics.median(r.seconds for r in adds))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_help(cli: Sequence[str]) -> float:
    times = []
    with tempfile.TemporaryDirectory(prefix="publisher-bench-help-") as cwd:
        for _ in range(HELP_RUNS):
            result = run([*cli, "--help"], Path(cwd))
            checked(result, "publisher --help", summary=False)
            times.append(result.seconds)
    return statistics.median(times)


def _row(metric: str, value: float, unit: str, target: float | None, note: str = "") -> Row:
    shown = f"{value:.3f} {unit}" if unit == "s" else f"{value:.0f} {unit}"
    if target is None:
        return Row(metric, shown, "-", None)
    return Row(metric, shown, f"< {target:g} {unit}" + (f" ({note})" if note else ""), value < target)


def rows(results: Sequence[SizeResult], help_seconds: float) -> list[Row]:
    table = []
    for r in results:
        cold_target, cold_note = COLD_TARGETS.get(r.size, (None, ""))
        runs = f" (median of {len(r.cold_runs)})" if len(r.cold_runs) > 1 else ""
        table.append(_row(f"cold publish {r.size:,}, feeds only{runs}", r.cold_seconds, "s", cold_target,
                          cold_note))
    for r in results:
        full_target, full_note = FULL_TARGETS.get(r.size, (None, ""))
        table.append(_row(f"cold publish {r.size:,} + related + digest", r.full_seconds, "s", full_target,
                          full_note))
    for r in results:
        table.append(_row(f"publish after adding 1 article to {r.size:,} (median of {ADD_RUNS})", r.add_seconds,
                          "s", ADD_TARGET))
    for r in results:
        table.append(_row(f"no-op publish {r.size:,} (median of {NOOP_RUNS})", r.noop_seconds, "s",
                          NOOP_TARGETS.get(r.size)))
    for r in results:
        table.append(_row(f"peak memory, cold {r.size:,}, feeds only", r.cold_rss_mb, "MB", MEMORY_TARGET_MB))
        table.append(_row(f"peak memory, cold {r.size:,} + related", r.full_rss_mb, "MB", MEMORY_TARGET_MB))
    table.append(_row(f"--help start-up (median of {HELP_RUNS})", help_seconds, "s", HELP_TARGET))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                        help="folder of <category>/<id>.txt articles [default: ../shared/corpus/bbc from the repo]")
    parser.add_argument("--sizes", type=number_list, default=list(DEFAULT_SIZES),
                        help="comma-separated article counts; beyond the corpus size it is copied into copyN/ "
                             "folders [default: 2225,22250]")
    parser.add_argument("--cold-runs", type=int, default=1, metavar="N",
                        help="cold publishes per size, each from an empty state; the table shows the median time "
                             "and the highest peak memory [default: 1]")
    args = parser.parse_args(argv)
    if args.cold_runs < 1:
        parser.error("--cold-runs must be 1 or more")
    corpus: Path = args.corpus.resolve()
    files = corpus_files(corpus)
    cli = cli_command()
    print(f"publisher benchmark: {' '.join(cli)} | corpus {corpus} ({len(files):,} files) | clock {CLOCK}")
    print("times: wall clock of each CLI subprocess, spawn to exit; "
          "peak memory: ru_maxrss of each publish child, from os.wait4() on that child alone")

    try:
        results = [bench_size(corpus, files, size, cli, args.cold_runs) for size in args.sizes]
        help_seconds = bench_help(cli)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print()
    print_table(rows(results, help_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
