"""One article that fails at the state step is reported and left out, the rest publish; memo keys cover
every input of a render; parsing workers never fork the calling process. Real files, real SQLite, the
real CLI in subprocesses."""

from __future__ import annotations

import json
import multiprocessing.forkserver
import re
import sqlite3
import subprocess
import threading

import feedparser
import pytest

from publisher import pipeline
from publisher.config import load_settings
from publisher.load import EXTENSIONS, scan_checked
from publisher.models import Problem
from tests.conftest import Site
from tests.test_related import write_topics

ERROR = re.compile(r"^error: (?P<path>[^:]+): (?P<message>.+)$")


def errors(result: subprocess.CompletedProcess[str]) -> list[re.Match[str]]:
    return [m for line in result.stderr.splitlines() if (m := ERROR.match(line))]


def titles(site: Site) -> dict[str, list[str]]:
    """Item titles per feed, as feed readers see them."""
    rss = feedparser.parse((site.feeds / "rss.xml").read_bytes())
    atom = feedparser.parse((site.feeds / "atom.xml").read_bytes())
    assert rss.bozo == 0 and atom.bozo == 0
    data = json.loads((site.feeds / "feed.json").read_text(encoding="utf-8"))
    return {"rss": [e.title for e in rss.entries], "atom": [e.title for e in atom.entries],
            "json": [i["title"] for i in data["items"]]}


def ids(site: Site) -> dict[str, str]:
    """Title -> id, from the JSON Feed."""
    data = json.loads((site.feeds / "feed.json").read_text(encoding="utf-8"))
    return {item["title"]: item["id"] for item in data["items"]}


def good(site: Site) -> None:
    site.write("good.md", "---\ntitle: Good One\ndate: 2026-10-01\n---\nA fine article.\n")


# --------------------------------------------------------------------------- ids claimed twice


def test_two_new_articles_with_one_guid_keep_the_first_and_name_both(site: Site) -> None:
    good(site)
    site.write("first.md", "---\ntitle: First Claim\nguid: same\n---\nOne of two.\n")
    site.write("second.md", "---\ntitle: Second Claim\nguid: same\n---\nTwo of two.\n")
    result = site.publish()
    assert result.returncode == 1, result.stderr
    found = errors(result)
    assert [(m["path"], "first.md" in m["message"]) for m in found] == [("second.md", True)], result.stderr
    assert "database" not in found[0]["message"]
    for feed in titles(site).values():
        assert sorted(feed) == ["First Claim", "Good One"], feed
    assert ids(site)["First Claim"] == "same"
    assert "1 skipped with errors" in result.stdout


def test_the_article_the_state_knows_keeps_its_guid(site: Site) -> None:
    good(site)
    site.write("zz-known.md", "---\ntitle: Known Claim\nguid: same\n---\nPublished first.\n")
    assert site.publish().returncode == 0
    site.write("aa-late.md", "---\ntitle: Late Claim\nguid: same\n---\nCame later, sorts first.\n")
    result = site.publish(clock="2026-11-26T12:00:00Z")
    assert result.returncode == 1, result.stderr
    assert [(m["path"], "zz-known.md" in m["message"]) for m in errors(result)] == [("aa-late.md", True)]
    for feed in titles(site).values():
        assert sorted(feed) == ["Good One", "Known Claim"], feed


def test_a_guid_equal_to_the_id_of_another_known_article_is_refused(site: Site) -> None:
    good(site)
    assert site.publish().returncode == 0
    taken = ids(site)["Good One"]
    site.write("copycat.md", f"---\ntitle: Copycat\nguid: '{taken}'\n---\nClaims the id of good.md.\n")
    site.write("fresh.md", "---\ntitle: Fresh\n---\nA new article beside it.\n")
    result = site.publish(clock="2026-11-26T12:00:00Z")
    assert result.returncode == 1, result.stderr
    assert [(m["path"], "good.md" in m["message"]) for m in errors(result)] == [("copycat.md", True)]
    assert ids(site)["Good One"] == taken
    for feed in titles(site).values():
        assert sorted(feed) == ["Fresh", "Good One"], feed


def test_a_guid_equal_to_the_id_of_a_deleted_article_stays_with_it(site: Site) -> None:
    good(site)
    site.write("old.md", "---\ntitle: Old One\ndate: 2026-09-01\n---\nSoon deleted.\n")
    assert site.publish().returncode == 0
    taken = ids(site)["Old One"]
    (site.articles / "old.md").unlink()
    site.write("reuse.md", f"---\ntitle: Reuse\nguid: '{taken}'\n---\nTakes a deleted article's id.\n")
    result = site.publish(clock="2026-11-26T12:00:00Z")
    assert result.returncode == 1, result.stderr
    found = errors(result)
    assert [(m["path"], "old.md" in m["message"]) for m in found] == [("reuse.md", True)], result.stderr
    for feed in titles(site).values():
        assert feed == ["Good One"], feed


# --------------------------------------------------------------------------- a row the database refuses


def refuse(site: Site, table: str, column: str, value: str) -> None:
    """A real SQLite trigger in the state: inserting that row fails as a constraint would."""
    with sqlite3.connect(site.state) as conn:
        conn.execute(f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN NEW.{column} = '{value}' "
                     "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END")
    conn.close()


def test_an_article_row_the_state_refuses_is_reported_and_the_rest_publish(site: Site) -> None:
    good(site)
    assert site.publish().returncode == 0
    refuse(site, "articles", "slug", "doomed")
    for name in ("aaa", "doomed", "zzz"):
        site.write(f"{name}.md", f"---\ntitle: New {name}\n---\nNew text of {name}.\n")
    result = site.publish(clock="2026-11-26T12:00:00Z")
    assert result.returncode == 1, result.stderr
    found = errors(result)
    assert [m["path"] for m in found] == ["doomed.md"], result.stderr
    assert "refused by the test trigger" in found[0]["message"]
    for feed in titles(site).values():
        assert sorted(feed) == ["Good One", "New aaa", "New zzz"], feed
    with sqlite3.connect(site.state) as conn:
        slugs = sorted(s for (s,) in conn.execute("SELECT slug FROM articles"))
    conn.close()
    assert slugs == ["aaa", "good", "zzz"], "each new row once, the refused one not at all"


def test_a_cache_row_the_state_refuses_is_reported_and_the_rest_publish(site: Site) -> None:
    good(site)
    assert site.publish().returncode == 0
    refuse(site, "sources", "path", "doomed.md")
    for name in ("aaa", "doomed"):
        site.write(f"{name}.md", f"---\ntitle: New {name}\n---\nNew text of {name}.\n")
    result = site.publish(clock="2026-11-26T12:00:00Z")
    assert result.returncode == 1, result.stderr
    assert [m["path"] for m in errors(result)] == ["doomed.md"], result.stderr
    for feed in titles(site).values():
        assert sorted(feed) == ["Good One", "New aaa"], feed


# --------------------------------------------------------------------------- memo keys


def related_items(site: Site, title: str) -> str:
    """The 'Related reading' list of one RSS item, as HTML."""
    parsed = feedparser.parse((site.feeds / "rss.xml").read_bytes())
    entry = next(e for e in parsed.entries if e.title == title)
    html = str(entry.get("content", [{}])[0].get("value", "") or entry.get("summary", ""))
    return html.split("Related reading", 1)[1] if "Related reading" in html else ""


def settle(site: Site, limit: int) -> None:
    """A full run that re-parses nothing (a feed setting changed): every memo key is now made from the
    state, as in the run under test."""
    site.configure(f"[feeds]\nlimit = {limit}")
    assert site.publish(clock="2026-11-25T12:30:00Z").returncode == 0


def test_renaming_an_article_outside_the_feed_window_renames_it_in_related_reading(site: Site) -> None:
    write_topics(site)
    assert site.publish().returncode == 0
    settle(site, 3)  # the feeds hold space-2, baking-2, football-2 (days 9, 8, 7)
    assert "Football story 0" in related_items(site, "Football story 2"), "precondition: it links to football-0"
    old = (site.articles / "football-0.md").read_text(encoding="utf-8")
    (site.articles / "football-0.md").write_text(old.replace("title: Football story 0", "title: Opening match"),
                                                 encoding="utf-8")
    assert site.publish(clock="2026-11-25T13:00:00Z").returncode == 0
    listed = related_items(site, "Football story 2")
    assert "Opening match" in listed and "Football story 0" not in listed, listed


@pytest.mark.parametrize("part", ["part.html.j2", "partials/part.html.j2"])
def test_index_page_follows_a_template_it_includes(site: Site, part: str) -> None:
    good(site)
    templates = site.root / "templates"
    (templates / part).parent.mkdir(parents=True)
    (templates / "index.html.j2").write_text(
        '<!doctype html><title>{{ site.title }}</title>{% include "' + part + '" %}\n'
        "{% for a in articles %}<p>{{ a.title }}</p>{% endfor %}\n", encoding="utf-8")
    (templates / part).write_text("<p>PART-ONE</p>", encoding="utf-8")
    assert site.publish().returncode == 0
    settle(site, 10)
    assert "PART-ONE" in (site.feeds / "index.html").read_text(encoding="utf-8")
    (templates / part).write_text("<p>PART-TWO</p>", encoding="utf-8")
    assert site.publish(clock="2026-11-25T13:00:00Z").returncode == 0
    page = (site.feeds / "index.html").read_text(encoding="utf-8")
    assert "PART-TWO" in page and "PART-ONE" not in page


def memo_rows(site: Site) -> dict[str, str]:
    with sqlite3.connect(site.state) as conn:
        rows = dict(conn.execute("SELECT name, input_key FROM memo"))
    conn.close()
    return rows


def test_a_run_that_changes_nothing_a_feed_shows_renders_no_feed(site: Site) -> None:
    """The memo keys are the same in every run for the same inputs (dates read from the files and read
    back from the state included): an edit outside the feed window renders no feed again."""
    write_topics(site)
    site.configure("[feeds]\nlimit = 3")
    assert site.publish().returncode == 0
    before = memo_rows(site)
    assert {"rss.xml", "atom.xml", "feed.json", "index.html"} <= set(before), before
    old = (site.articles / "baking-0.md").read_text(encoding="utf-8")
    (site.articles / "baking-0.md").write_text(old + "\nOne more sentence about bread.\n", encoding="utf-8")
    assert site.publish(clock="2026-11-25T13:00:00Z").returncode == 0
    assert memo_rows(site) == before, "an output was rendered again although none of its inputs changed"


# --------------------------------------------------------------------------- parsing workers


def test_parsing_workers_start_from_a_fork_server_even_when_called_from_a_thread(site: Site) -> None:
    """The scheduler calls publish from a thread: the workers must not be forked from that process."""
    for n in range(pipeline.PARALLEL_FROM):
        site.write(f"n{n:04}.txt", f"Title number {n}\n\nThe text of article {n}.\n")
    settings = load_settings(site.root / "publisher.toml", site.root)
    files, problems = scan_checked(settings.paths.articles, EXTENSIONS)
    assert len(files) == pipeline.PARALLEL_FROM and not problems
    results: list[pipeline.Parsed] = []
    worker = threading.Thread(target=lambda: results.extend(pipeline.read_many(files, settings.site)))
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "read_many did not finish"
    assert multiprocessing.forkserver._forkserver._forkserver_pid is not None, "no fork server was started"
    serial = [pipeline.read_one(f, settings.site) for f in files[:50]]
    assert results[:50] == serial and len(results) == len(files)
    assert not [r for r in results if isinstance(r, Problem)]
