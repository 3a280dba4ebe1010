"""Only files inside the articles folder: real symbolic links (os.symlink) in a real folder, found by the
real scan and read by the real reader; and one publish through the real CLI.

Chosen rules: a link whose target resolves outside the folder is an error naming the link and its
target (left out, the rest goes on); a loop is a warning and is not followed; a file link inside the
folder is read once (left out when its target is read under its own name); a folder link inside the
folder is never followed (its files are read where they are), with a warning.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from publisher.errors import ArticleError
from publisher.load import EXTENSIONS, forget_folders, read, scan_checked
from publisher.models import Problem
from tests.conftest import Site

ARTICLE = "---\ntitle: {title}\n---\n{body}\n"
SECRET = "root:x:0:0:SECRET-MARKER"


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """articles/ with one good article, and outside/ beside it holding a secret file and folder."""
    articles, outside = tmp_path / "articles", tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    articles.mkdir()
    (articles / "good.md").write_text(ARTICLE.format(title="Good", body="Fine."), encoding="utf-8")
    (outside / "secret.md").write_text(ARTICLE.format(title="Secret", body=SECRET), encoding="utf-8")
    (outside / "folder" / "inner.md").write_text(ARTICLE.format(title="Inner", body=SECRET), encoding="utf-8")
    return articles, outside


def rels(articles: Path) -> tuple[list[str], list[Problem]]:
    files, problems = scan_checked(articles, EXTENSIONS)
    return [f.rel for f in files], problems


def only(problems: list[Problem], rel: str) -> Problem:
    ours = [p for p in problems if p.path == rel]
    assert len(ours) == 1, problems
    assert "\n" not in str(ours[0])
    return ours[0]


def test_file_link_outside_is_an_error_naming_link_and_target(folders: tuple[Path, Path]) -> None:
    articles, outside = folders
    os.symlink(outside / "secret.md", articles / "passwd.md")
    found, problems = rels(articles)
    assert found == ["good.md"]
    problem = only(problems, "passwd.md")
    assert problem.severity == "error"
    assert str(outside / "secret.md") in problem.message and "outside the articles folder" in problem.message
    assert "remove the link" in problem.hint


def test_folder_link_outside_is_an_error(folders: tuple[Path, Path]) -> None:
    articles, outside = folders
    os.symlink(outside / "folder", articles / "more")
    found, problems = rels(articles)
    assert found == ["good.md"]
    problem = only(problems, "more")
    assert problem.severity == "error" and str(outside / "folder") in problem.message


def test_relative_link_climbing_out_is_an_error(folders: tuple[Path, Path]) -> None:
    articles, _ = folders
    (articles / "sub").mkdir()
    os.symlink("../../outside/secret.md", articles / "sub" / "secret.md")
    found, problems = rels(articles)
    assert found == ["good.md"]
    assert only(problems, "sub/secret.md").severity == "error"


def test_loop_to_the_folder_itself_is_a_warning_and_not_followed(folders: tuple[Path, Path]) -> None:
    articles, _ = folders
    os.symlink(".", articles / "self")
    (articles / "sub").mkdir()
    os.symlink("..", articles / "sub" / "up")
    found, problems = rels(articles)
    assert found == ["good.md"]
    for rel in ("self", "sub/up"):
        problem = only(problems, rel)
        assert problem.severity == "warning" and "loop" in problem.message


def test_links_pointing_at_each_other_are_a_warning(folders: tuple[Path, Path]) -> None:
    articles, _ = folders
    os.symlink("b.md", articles / "a.md")
    os.symlink("a.md", articles / "b.md")
    found, problems = rels(articles)
    assert found == ["good.md"]
    assert {only(problems, r).severity for r in ("a.md", "b.md")} == {"warning"}


def test_file_link_inside_is_read_once(folders: tuple[Path, Path]) -> None:
    articles, _ = folders
    os.symlink("good.md", articles / "again.md")  # its target is read under its own name
    (articles / ".drafts").mkdir()
    (articles / ".drafts" / "post.md").write_text(ARTICLE.format(title="Post", body="Hi."), encoding="utf-8")
    os.symlink(".drafts/post.md", articles / "post.md")  # its target is hidden: read through the link
    os.symlink(".drafts/post.md", articles / "post2.md")  # a second link to it: left out
    found, problems = rels(articles)
    assert found == ["good.md", "post.md"]
    assert only(problems, "again.md").severity == "warning"
    assert "good.md" in only(problems, "again.md").message
    assert only(problems, "post2.md").severity == "warning"
    files, _ = scan_checked(articles, EXTENSIONS)
    assert read(files[1], ZoneInfo("UTC")).title == "Post"


def test_folder_link_inside_is_not_followed(folders: tuple[Path, Path]) -> None:
    articles, _ = folders
    (articles / "2024").mkdir()
    (articles / "2024" / "old.md").write_text(ARTICLE.format(title="Old", body="Old."), encoding="utf-8")
    os.symlink("2024", articles / "archive")
    found, problems = rels(articles)
    assert found == ["2024/old.md", "good.md"]
    problem = only(problems, "archive")
    assert problem.severity == "warning" and "2024/" in problem.message


def test_dangling_link_is_a_warning(folders: tuple[Path, Path]) -> None:
    articles, _ = folders
    os.symlink("nowhere.md", articles / "dangling.md")
    os.symlink("nowhere.png", articles / "picture.png")  # not an article: nothing to say
    found, problems = rels(articles)
    assert found == ["good.md"]
    assert only(problems, "dangling.md").severity == "warning"
    assert [p.path for p in problems] == ["dangling.md"]


def test_link_swapped_after_the_scan_is_refused_at_read(folders: tuple[Path, Path]) -> None:
    articles, outside = folders
    (articles / ".drafts").mkdir()
    (articles / ".drafts" / "post.md").write_text(ARTICLE.format(title="Post", body="Hi."), encoding="utf-8")
    os.symlink(".drafts/post.md", articles / "link.md")
    files, problems = scan_checked(articles, EXTENSIONS)
    assert [f.rel for f in files] == ["good.md", "link.md"] and problems == []
    (articles / "link.md").unlink()
    os.symlink(outside / "secret.md", articles / "link.md")
    with pytest.raises(ArticleError) as caught:
        read(files[1], ZoneInfo("UTC"))
    assert caught.value.path == "link.md" and caught.value.severity == "error"
    assert "outside the articles folder" in str(caught.value)


def test_folder_swapped_for_a_link_is_refused_at_the_next_run(folders: tuple[Path, Path]) -> None:
    """A folder's real path is looked up once per run (forget_folders starts a run): a folder swapped for
    a link to outside after one run is refused at the next run's read, even for a file list scanned before."""
    articles, outside = folders
    (articles / "sub").mkdir()
    (articles / "sub" / "inner.md").write_text(ARTICLE.format(title="Mine", body="Hi."), encoding="utf-8")
    files, _ = scan_checked(articles, EXTENSIONS)
    forget_folders()
    assert read(files[1], ZoneInfo("UTC")).title == "Mine"
    (articles / "sub" / "inner.md").unlink()
    (articles / "sub").rmdir()
    os.symlink(outside / "folder", articles / "sub")
    forget_folders()
    with pytest.raises(ArticleError) as caught:
        read(files[1], ZoneInfo("UTC"))
    assert caught.value.path == "sub/inner.md" and "outside the articles folder" in str(caught.value)


def test_the_articles_folder_may_itself_be_a_link(folders: tuple[Path, Path], tmp_path: Path) -> None:
    articles, _ = folders
    os.symlink(articles, tmp_path / "linked")
    found, problems = rels(tmp_path / "linked")
    assert (found, problems) == (["good.md"], [])
    files, _ = scan_checked(tmp_path / "linked", EXTENSIONS)
    assert read(files[0], ZoneInfo("UTC")).title == "Good"


def test_bad_file_name_is_a_problem_not_a_crash(folders: tuple[Path, Path]) -> None:
    articles, _ = folders
    (articles / os.fsdecode(b"bad\xff.md")).write_text(ARTICLE.format(title="B", body="B."), encoding="utf-8")
    (articles / "ctl\x01.md").write_text(ARTICLE.format(title="C", body="C."), encoding="utf-8")
    found, problems = rels(articles)
    assert found == ["good.md"]
    assert sorted(p.path for p in problems) == ["bad\\udcff.md", "ctl\\x01.md"]
    for problem in problems:
        str(problem).encode("utf-8")


def test_publish_never_carries_a_file_from_outside(site: Site, tmp_path: Path) -> None:
    """Through the real CLI: the secret reaches no feed and no state; each link is named in a one-line
    error on stderr and the exit code says an article was refused."""
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.md").write_text(ARTICLE.format(title="Secret", body=SECRET), encoding="utf-8")
    (outside / "folder" / "inner.md").write_text(ARTICLE.format(title="Inner", body=SECRET), encoding="utf-8")
    site.write("good.md", ARTICLE.format(title="Good Article", body="Fine and dandy."))
    os.symlink(outside / "secret.md", site.articles / "passwd.md")
    os.symlink(outside / "folder", site.articles / "more")
    os.symlink(".", site.articles / "self")
    result = site.publish()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    for rel in ("passwd.md", "more"):
        assert any(line.startswith(f"error: {rel}") and "outside the articles folder" in line
                   for line in result.stderr.splitlines()), result.stderr
    outputs = site.feed_bytes()
    assert "Good Article" in outputs["feed.json"].decode("utf-8")
    for name, data in outputs.items():
        assert b"SECRET-MARKER" not in data and b"Secret" not in data, name
    conn = sqlite3.connect(site.state)
    try:
        sources = {row[0] for row in conn.execute("SELECT source FROM articles")}
    finally:
        conn.close()
    assert sources == {"good.md"}
