"""Related reading through the real pipeline and CLI: order, stability, the include-newer rule, cache."""

from __future__ import annotations

import json
import sqlite3

import pytest

from publisher.enrich.related import RelatedIndex
from tests.conftest import Site, run_cli

TOPICS = {
    "football": [
        "The striker scored a goal as the football club won the league match at the stadium.",
        "A late goal from the club captain won the football match; the stadium fans sang for the league leaders.",
        "The football manager praised the striker after the league match; the club fans filled the stadium.",
    ],
    "baking": [
        "Knead the bread dough, let the dough rise, then bake the bread in a hot oven until the crust is golden.",
        "Sourdough bread needs flour, water and a slow rise; bake the dough in a hot oven for a crisp crust.",
        "Brush the bread with egg before you bake it, so the crust turns golden in the oven; the dough stays soft.",
    ],
    "space": [
        "The rocket carried a satellite into orbit; the space agency watched the launch of the rocket.",
        "The space agency launched a telescope into orbit on a rocket to study a distant planet.",
        "Astronauts on the space station in orbit repaired a satellite that the rocket had carried to space.",
    ],
}


def day(slug: str) -> int:
    """Each topic article has its own day: football-0 the 1st, baking-0 the 2nd, ... space-2 the 9th."""
    topic, n = slug.rsplit("-", 1)
    return 1 + list(TOPICS).index(topic) + 3 * int(n)


def write_topics(site: Site) -> None:
    for topic, texts in TOPICS.items():
        for n, text in enumerate(texts):
            slug = f"{topic}-{n}"
            site.write(f"{slug}.md", f"---\ntitle: {topic.title()} story {n}\ndate: 2026-11-{day(slug):02}\n---\n"
                       f"{text} {text}\n")


def related_all(site: Site, clock: str = "2026-11-25T12:00:00Z") -> dict[str, list[dict[str, object]]]:
    result = run_cli("related", "--all", "--json", "--clock", clock, cwd=site.root)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {line["slug"]: line["related"] for line in lines}


def test_lists_stay_on_topic_and_link_only_to_older_articles(site: Site) -> None:
    write_topics(site)
    assert site.publish().returncode == 0
    lists = related_all(site)
    assert len(lists) == 9
    for slug, items in lists.items():
        topic, n = slug.rsplit("-", 1)
        assert all(day(str(item["slug"])) < day(slug) for item in items), "only older articles by default"
        assert all(str(item["slug"]).startswith(topic) for item in items), (slug, items)
        assert all(item["reason"] == "similarity" and isinstance(item["score"], float) for item in items)
        if n != "0":
            assert items, f"{slug} has older articles on its topic"


def test_source_references_come_first_and_lists_are_deterministic(make_site) -> None:  # type: ignore[no-untyped-def]
    results = []
    for name in ("a", "b"):
        site = make_site(name)
        write_topics(site)
        site.write("space-3.md", "---\ntitle: Space story 3\ndate: 2026-11-20\nrelated: [Baking Story 0!]\n---\n"
                   "The telescope on the space station watched the rocket reach orbit. The crew cheered.\n")
        assert site.publish().returncode == 0
        results.append(related_all(site))
        rss = (site.feeds / "rss.xml").read_text(encoding="utf-8")
        assert "Related reading" in rss
    assert results[0] == results[1]
    first = results[0]["space-3"]
    assert first[0] == {"slug": "baking-0", "score": None, "reason": "source reference"}
    assert [str(i["slug"]).split("-")[0] for i in first[1:4]] == ["space"] * 3


def test_new_articles_do_not_change_old_lists_unless_include_newer(site: Site) -> None:
    write_topics(site)
    site.publish()
    before = related_all(site)
    site.write("football-9.md", "---\ntitle: Football story 9\n---\nThe striker scored a goal at the stadium "
               "and the club won the league match. The fans sang for the team.\n")
    added = run_cli("-v", "publish", "--clock", "2026-11-26T12:00:00Z", cwd=site.root)
    assert "related reading: ranking 1 of 10 articles" in added.stderr
    after = related_all(site, "2026-11-26T12:00:00Z")
    assert {k: v for k, v in after.items() if k != "football-9"} == before
    assert [str(i["slug"]).split("-")[0] for i in after["football-9"][:3]] == ["football"] * 3
    quiet = run_cli("-v", "publish", "--clock", "2026-11-26T13:00:00Z", cwd=site.root)
    assert "related reading: ranking" not in quiet.stderr, "nothing changed: rankings come from the cache"
    config = site.root / "publisher.toml"
    config.write_text(config.read_text() + "\n[related]\ninclude_newer = true\n", encoding="utf-8")
    site.publish(clock="2026-11-26T14:00:00Z")
    newer = related_all(site, "2026-11-26T14:00:00Z")
    assert any(item["slug"] == "football-9" for item in newer["football-0"])


def test_one_article_and_unknown_slug(site: Site) -> None:
    site.write("only.md", "---\ntitle: Only\n---\nAlone here.\n")
    site.publish()
    shown = run_cli("related", "only", "--clock", "2026-11-25T12:00:00Z", cwd=site.root)
    assert shown.returncode == 0 and shown.stdout.startswith("only: Only")
    missing = run_cli("related", "nope", cwd=site.root)
    assert missing.returncode == 2 and "no published article has the slug 'nope'" in missing.stderr


def test_include_newer_ranks_old_lists_again_when_the_archive_changes(site: Site) -> None:
    """With include_newer from the start, a new article on a topic joins the older articles' lists."""
    write_topics(site)
    site.configure("[related]\ninclude_newer = true")
    assert site.publish().returncode == 0
    before = related_all(site)
    assert all(item["slug"] != "football-9" for item in before["football-0"])
    site.write("football-9.md", "---\ntitle: Football story 9\ndate: 2026-11-20\n---\nThe striker scored a goal at "
               "the stadium and the club won the league match; the football fans sang for the league leaders.\n")
    added = run_cli("-v", "publish", "--clock", "2026-11-26T12:00:00Z", cwd=site.root)
    assert added.returncode == 0, added.stderr
    assert "related reading: ranking 10 of 10 articles" in added.stderr, added.stderr
    after = related_all(site, "2026-11-26T12:00:00Z")
    for slug in ("football-0", "football-1", "football-2"):
        assert "football-9" in [item["slug"] for item in after[slug]], (slug, after[slug])
    rss = (site.feeds / "rss.xml").read_text(encoding="utf-8")
    assert rss.count("Football story 9") >= 2, "the feed items' related reading link to the new article"


def _old_format_index() -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, version=np.array([0, 1, 0], dtype=np.int64))
    return buffer.getvalue()


@pytest.mark.parametrize(("column", "value", "warned"), [
    ("data", b"not an index at all", True), ("data", _old_format_index(), False), ("hashes", b"{not json", True)],
    ids=["corrupt", "old-format", "bad-hashes"])
def test_an_unusable_related_index_in_the_state_is_rebuilt(site: Site, column: str, value: bytes, warned: bool) -> None:
    """A corrupt index is a warning; an earlier version's (after an upgrade) is built again without one."""
    write_topics(site)
    assert site.publish().returncode == 0
    with sqlite3.connect(site.state) as conn:
        conn.execute(f"UPDATE related_index SET {column} = ?", (value if column == "data" else value.decode(),))
    conn.close()
    site.write("football-9.md", "---\ntitle: Football story 9\n---\nThe striker scored a goal at the stadium.\n")
    result = site.publish(clock="2026-11-26T12:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    if not warned:
        assert "related reading" not in result.stderr, result.stderr
    else:
        assert "related reading: the index in the state database cannot be used" in result.stderr, result.stderr
        assert "rebuilding it" in result.stderr
    with sqlite3.connect(site.state) as conn:
        hashes, data = conn.execute("SELECT hashes, data FROM related_index").fetchone()
    conn.close()
    assert len(RelatedIndex.from_bytes(data)) == 10 and len(json.loads(hashes)) == 10
    assert [i["slug"].split("-")[0] for i in related_all(site, "2026-11-26T12:00:00Z")["football-9"][:2]] == [
        "football", "football"]
