"""Progress on every slow stage, in a terminal only: the related-reading stage (fitting the model, then
ranking) gets its own bar line, and a pipe gets no bar at all."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from publisher.config import load_settings
from publisher.enrich.reading import relate
from publisher.enrich.related import RelatedIndex
from publisher.store import open_store
from tests.conftest import CLOCK, Site

WORDS = ["river", "harbour", "engine", "budget", "league", "concert", "vaccine", "orbit", "glacier", "market",
         "election", "striker", "museum", "satellite", "harvest", "tariff", "symphony", "volcano"]


def many_articles(site: Site, n: int) -> None:
    """n short articles on a few topics, so the model has something to fit."""
    for i in range(n):
        topic = [WORDS[(i + k) % len(WORDS)] for k in range(4)]
        body = " ".join(f"The {w} report number {i} speaks of the {topic[(j + 1) % 4]}." for j, w in enumerate(topic))
        site.write(f"a{i:03}.md", f"---\ntitle: Report {i} on the {topic[0]}\ndate: 2026-11-{1 + i % 20:02}\n"
                                  f"---\n{body}\n\n{body}\n")


def on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout piped); its exit code and what the terminal showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "publisher", *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return process.wait(timeout=120), shown.decode("utf-8", "replace")


def test_publish_on_a_terminal_shows_the_related_reading_stage(site: Site) -> None:
    many_articles(site, 80)
    code, shown = on_a_terminal(["publish", "--no-send", "--clock", CLOCK], site.root)
    assert code == 0, shown
    lines = [line for line in shown.split("\n") if "related reading" in line]
    assert len(lines) == 1, shown  # one line for the stage, redrawn in place (\r)
    last = re.sub(r"\x1b\[\?25[lh]", "", lines[0].rstrip("\r").rsplit("\r", 1)[-1])
    assert re.fullmatch(r"related reading +\[#+\] +100% +\d+\.\d s *", last.strip()), last  # done, time spent


def test_no_bar_in_a_pipe(site: Site) -> None:
    many_articles(site, 80)
    result = subprocess.run([sys.executable, "-m", "publisher", "publish", "--no-send", "--clock", CLOCK],
                            cwd=site.root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "related reading" not in result.stderr and "%" not in result.stderr


class Recorder:
    def __init__(self) -> None:
        self.stages: list[tuple[str, int]] = []
        self.done = 0

    def start(self, total: int, label: str = "") -> None:
        self.stages.append((label, total))

    def advance(self, done: int) -> None:
        self.done += done


def test_relate_reports_fitting_and_ranking_steps_that_add_up(site: Site) -> None:
    """The library's hook, on a real state: texts read + model fitted + articles ranked = the total told."""
    from publisher.load import EXTENSIONS, scan_checked
    from publisher.pipeline import load_entries

    many_articles(site, 60)
    settings = load_settings(site.root / "publisher.toml", site.root)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    with open_store(settings.paths.state) as store:
        files, _ = scan_checked(settings.paths.articles, EXTENSIONS)
        entries = {e.slug: e for e in load_entries(files, store, settings.site).entries}
        identities, _ = store.record(list(entries.values()), now, settings.site.url)

        def html_of(slugs: object) -> dict[str, str]:
            sources = {entries[s].source: s for s in slugs}  # type: ignore[attr-defined]
            return {sources[src]: html for src, html in store.html_for(sources).items()}

        recorder = Recorder()
        relate(entries, identities, store, html_of, settings.related, progress=recorder)
        assert recorder.stages == [("related reading", 60 + RelatedIndex.build_steps(60) + 60)]
        assert recorder.done == recorder.stages[0][1]
        again = Recorder()
        relate(entries, identities, store, html_of, settings.related, progress=again)
        assert again.stages == [] and again.done == 0  # nothing to rank: no stage at all
