"""Benchmark the related-reading engine on the BBC corpus: quality, full ranking, incremental add, memory.

    /work/venv/bin/python bench/bench_related.py [--corpus ../shared/corpus/bbc] [--count 5]

Quality: precision@5 = the share of an article's top 5 that has its category, averaged over all 2,225
articles, with include_newer=True and one published time for all (so only content decides). The 98
pairs of identical texts stay in: a twin ranked first counts as a hit. Category labels are used for
this measurement only, never for fitting.

Speed: rank_all over 2,225 articles and over 22,250 (ten copies of the corpus with distinct keys, one
day apart per copy). Incremental: a stored 22,250-article index is loaded from disk and one new article
is added and ranked (include_newer=False) in a fresh process, timed from reading the file to the
result; the import of the module and saving the grown index are timed separately. Peak memory is
resource.getrusage(RUSAGE_SELF).ru_maxrss of this process; for the fresh process of the add it is its
VmHWM, because ru_maxrss is carried over fork + exec and would show this process's peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from publisher.enrich.related import RankDoc, RelatedIndex, rank_all  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "bbc"
COPIES = 10
DAY = 86_400.0
T0 = 1_600_000_000.0
TARGETS = {"p@5": 0.95, "rank_all": 8.0, "add": 1.0}
T = TypeVar("T")

CHILD = """\
import json, resource, sys, time
t0 = time.perf_counter()
from publisher.enrich.related import RankDoc, RelatedIndex
t1 = time.perf_counter()
path, title, text = sys.argv[1], sys.argv[2], sys.argv[3]
new = RankDoc("new-article", title, text, ("bench",), float(sys.argv[4]))
with open(path, "rb") as f:
    index = RelatedIndex.from_bytes(f.read())
t2 = time.perf_counter()
links = index.rank_new([new], int(sys.argv[5]), include_newer=False)[new.key]
t3 = time.perf_counter()
with open(path, "wb") as f:
    f.write(index.to_bytes())
t4 = time.perf_counter()
full = index.rank([new.key], int(sys.argv[5]), include_newer=False)[new.key]
try:  # ru_maxrss survives fork + exec (it would report the parent's peak): read this process's own
    with open("/proc/self/status") as f:
        peak = [int(line.split()[1]) for line in f if line.startswith("VmHWM:")][0]
except (OSError, IndexError):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "rank": t3 - t2, "save": t4 - t3, "size": len(index),
                  "links": [[r.key, r.score] for r in links], "same_as_full": links == full, "peak_kb": peak}))
"""


def read_corpus(root: Path) -> list[tuple[str, str, str, str]]:
    """(key, category, title, body) for every bbc/<category>/<id>.txt, in path order."""
    out = []
    for path in sorted(root.glob("*/*.txt")):
        raw = path.read_text(encoding="utf-8", errors="replace")
        title, _, body = raw.partition("\n")
        out.append((f"{path.parent.name}/{path.stem}", path.parent.name, title.strip(), body.strip()))
    return out


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    corpus = read_corpus(args.corpus)
    if not corpus:
        print(f"no articles under {args.corpus}", file=sys.stderr)
        return 2
    count = args.count
    category = {key: cat for key, cat, _, _ in corpus}
    print(f"corpus: {args.corpus} ({len(corpus)} articles, {len(set(category.values()))} categories); "
          f"RSS after imports and reading: {peak_mb():.0f} MB")

    # the first build imports scikit-learn (lazily, it is slow to import): time that on its own
    _, seconds = timed(lambda: rank_all([RankDoc("a", "warm", "up", (), T0)], count, include_newer=True))
    print(f"first call (imports scikit-learn): {seconds:.2f} s")

    # quality and speed on the corpus itself
    docs = [RankDoc(key, title, body, (), T0) for key, _, title, body in corpus]
    ranked, seconds = timed(lambda: rank_all(docs, count, include_newer=True))
    hits = [sum(category[r.key] == category[key] for r in links) / count for key, links in ranked.items()]
    p5 = sum(hits) / len(hits)
    short = sum(len(links) < count for links in ranked.values())
    print(f"precision@{count} ({len(docs)}): {p5:.4f}  [target >= {TARGETS['p@5']}: {mark(p5 >= TARGETS['p@5'])}]"
          f"  (lists shorter than {count}: {short})")
    print(f"rank_all {len(docs):>6,} articles: {seconds:6.2f} s  [target < {TARGETS['rank_all']:.0f} s: "
          f"{mark(seconds < TARGETS['rank_all'])}]  peak RSS so far {peak_mb():.0f} MB")

    # ten copies with distinct keys: the 22,250-article archive
    big = [RankDoc(f"c{c}-{key}", title, body, (), T0 + c * DAY + i)
           for c in range(COPIES) for i, (key, _, title, body) in enumerate(corpus)]
    ranked_big, seconds = timed(lambda: rank_all(big, count, include_newer=True))
    print(f"rank_all {len(big):>6,} articles: {seconds:6.2f} s  [target < {TARGETS['rank_all']:.0f} s: "
          f"{mark(seconds < TARGETS['rank_all'])}]  peak RSS so far {peak_mb():.0f} MB")
    del ranked_big
    _, seconds = timed(lambda: rank_all(big, count, include_newer=False))
    print(f"rank_all {len(big):>6,} articles, include_newer=False: {seconds:6.2f} s")

    # incremental: build and store the index, then add one article in a fresh process
    index, build_seconds = timed(lambda: RelatedIndex.build(big))
    blob = index.to_bytes()
    del index
    key, _, title, body = corpus[len(corpus) // 3]
    newest = T0 + COPIES * DAY
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "related.npz"
        path.write_bytes(blob)
        child = subprocess.run([sys.executable, "-c", CHILD, str(path), f"{title} (follow-up)", body, str(newest),
                                str(count)], cwd=REPO, capture_output=True, text=True, check=True)
    report = json.loads(child.stdout)
    add = report["load"] + report["rank"]
    print(f"index of {len(big):,}: build {build_seconds:.2f} s, stored {len(blob) / 2**20:.1f} MB")
    print(f"add 1 article to {len(big):,}, load + rank: {add:.3f} s (load {report['load']:.3f} s, rank "
          f"{report['rank']:.3f} s)  [target < {TARGETS['add']:.0f} s: {mark(add < TARGETS['add'])}]")
    print(f"  module import {report['import']:.3f} s, save grown index ({report['size']:,}) {report['save']:.3f} s, "
          f"peak RSS of that process (VmHWM) {report['peak_kb'] / 1024:.0f} MB")
    print(f"  new article's list (copy of {key}): {report['links']}; same as a full rank: {report['same_as_full']}")
    print(f"peak RSS of this process: {peak_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
