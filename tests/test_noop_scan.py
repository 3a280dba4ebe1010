"""The articles scan (load.source.scan_checked), one lstat per name from each folder opened once: the same
files and problems as a plain walk would give, for article names, bad names, links and names gone since
the listing. Real folders and links; the one stand-in is a listing that names a file no longer there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from publisher.load import EXTENSIONS, scan_checked
from publisher.models import Problem, SourceFile

BODY = "title: T\n\nText.\n"


def make(folder: Path, *names: str | bytes) -> None:
    for name in names:
        path = os.path.join(os.fsencode(folder), os.fsencode(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(BODY)


def test_article_names_are_chosen_by_their_last_extension_in_any_case(tmp_path: Path) -> None:
    make(tmp_path, "a.txt", "B.TXT", "c.Md", "d.markdown", "e.tar.txt", "f.", "g", "h.html", "i.txt.bak",
         ".hidden.txt", "sub/x.md", ".hidden/y.md", "sub/deeper/z.txt")
    files, problems = scan_checked(tmp_path, EXTENSIONS)
    assert [f.rel for f in files] == ["B.TXT", "a.txt", "c.Md", "d.markdown", "e.tar.txt", "sub/deeper/z.txt",
                                      "sub/x.md"]
    assert problems == []
    size = len(BODY)
    first = os.stat(tmp_path / "B.TXT")
    assert files[0] == SourceFile(os.path.join(tmp_path, "B.TXT"), "B.TXT", first.st_mtime_ns, size)
    assert all(f.path == os.path.join(tmp_path, f.rel) for f in files)


def test_bad_names_among_good_ones_are_each_reported(tmp_path: Path) -> None:
    make(tmp_path, *[f"ok{n}.txt" for n in range(50)], b"bad\xffname.txt", "ctl\x01.md", "dir\x02/inside.txt",
         "ctl\x03.html")  # not an article name: not reported
    os.symlink(tmp_path / "dir\x02", tmp_path / "link\x04")  # a link to a folder: reported like a folder
    files, problems = scan_checked(tmp_path, EXTENSIONS)
    assert len(files) == 50 and all(f.rel.startswith("ok") for f in files)
    reason = "file name is not UTF-8 text or holds control characters"
    assert sorted(p.path for p in problems) == ["bad\\udcffname.txt", "ctl\\x01.md", "dir\\x02", "link\\x04"]
    assert {p.message for p in problems} == {reason}


def test_links_are_followed_once_and_only_inside(tmp_path: Path) -> None:
    articles, outside = tmp_path / "articles", tmp_path / "outside"
    make(articles, "a.txt", "sub/b.txt")
    make(outside, "o.txt")
    os.symlink("a.txt", articles / "again.txt")
    os.symlink("sub/b.txt", articles / "c.txt")
    os.symlink(outside / "o.txt", articles / "out.txt")
    os.symlink("sub", articles / "folder")
    os.symlink("nothing.txt", articles / "dangling.txt")
    files, problems = scan_checked(articles, EXTENSIONS)
    assert [f.rel for f in files] == ["a.txt", "sub/b.txt"]  # both links lead to files read already
    assert {p.path: p.severity for p in problems} == {"again.txt": "warning", "c.txt": "warning",
                                                      "out.txt": "error", "folder": "warning",
                                                      "dangling.txt": "warning"}


def test_a_name_gone_since_the_listing_is_reported_only_when_it_was_an_article(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, "a.txt")
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda folder: [*listdir(folder), "gone.txt", "gone.png"])
    files, problems = scan_checked(tmp_path, EXTENSIONS)
    assert [f.rel for f in files] == ["a.txt"]
    assert problems == [Problem("gone.txt", "file cannot be read: No such file or directory", "", None,
                                "warning")]


def test_a_folder_that_cannot_be_listed_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, "a.txt", "locked/b.txt")
    real_open = os.open

    def refuse(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    files, problems = scan_checked(tmp_path, EXTENSIONS)
    assert [f.rel for f in files] == ["a.txt"]
    assert problems == [Problem("locked", "folder cannot be read: Permission denied", "check its permissions", None,
                                "warning")]
