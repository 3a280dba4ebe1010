"""write.py behaviour that the mutation run (mutmut 3, issue 9) showed untested: output folders with
missing parents, names that would leave the output folder, the temporary file beside its target, the
debris of a killed run, and unchanged bytes left alone. Real folders and files, no mocks."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest

from publisher.errors import OutputError
from publisher.write import compare_outputs, safe_join, write_atomic, write_outputs


def tree(root: Path) -> list[str]:
    """Every file and folder under root, relative, sorted (empty when root does not exist)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_an_output_folder_whose_parents_do_not_exist_is_created(tmp_path: Path) -> None:
    root = tmp_path / "site" / "public" / "feeds"  # [paths] output = "site/public/feeds" in a fresh project
    files = {"rss.xml": b"<rss/>", "digests/2026/11/weekly.html": b"<html/>"}
    assert write_outputs(root, files) == (sorted(files), [])
    assert {name: (root / name).read_bytes() for name in files} == files


def test_write_atomic_creates_the_missing_folders_of_its_file(tmp_path: Path) -> None:
    path = tmp_path / "outbox" / "digest-1" / "reader-1.eml"  # how the outbox stores a message
    assert write_atomic(path, b"Subject: x\r\n\r\nbody\r\n")
    assert path.read_bytes() == b"Subject: x\r\n\r\nbody\r\n"
    assert tree(tmp_path / "outbox") == ["digest-1", "digest-1/reader-1.eml"]


def test_an_output_folder_that_cannot_be_created_is_named_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "public").write_text("a file where the output folder should be")
    root = tmp_path / "public" / "feeds"
    with pytest.raises(OutputError) as raised:
        write_outputs(root, {"rss.xml": b"<rss/>"})
    assert raised.value.message == f"{root}: cannot create the output folder: Not a directory"
    assert "[paths] output" in raised.value.hint
    assert (tmp_path / "public").read_text() == "a file where the output folder should be"


def test_a_file_that_cannot_be_replaced_says_why_and_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "rss.xml").mkdir()
    (tmp_path / "rss.xml" / "keep").write_text("x")
    with pytest.raises(OutputError) as raised:
        write_outputs(tmp_path, {"rss.xml": b"<rss/>"})
    assert raised.value.message == (f"{tmp_path / 'rss.xml'}: cannot replace it: Is a directory; "
                                    "every file keeps its old version")
    assert "writable" in raised.value.hint


def test_a_file_that_cannot_be_staged_gives_a_hint(tmp_path: Path) -> None:
    (tmp_path / "digests").write_text("a file where a folder is needed")
    with pytest.raises(OutputError) as raised:
        write_outputs(tmp_path, {"digests/x.html": b"new"})
    assert raised.value.message == f"{tmp_path / 'digests/x.html'}: cannot write: File exists; no file was replaced"
    assert "permissions" in raised.value.hint


LEAVING = ["../evil.xml", "..\\evil.xml", "a/../../evil.xml", "a\\..\\..\\evil.xml", "a/../b.xml",
           "/etc/evil.xml", "\\evil.xml", "", ".", "C:evil.xml", "C:\\evil.xml"]


@pytest.mark.parametrize("name", LEAVING)
def test_a_name_that_is_not_plainly_inside_the_output_folder_is_refused_before_any_write(
        tmp_path: Path, name: str) -> None:
    root = tmp_path / "out"
    with pytest.raises(OutputError) as raised:
        write_outputs(root, {"atom.xml": b"<feed/>", name: b"x", "rss.xml": b"<rss/>"})
    assert raised.value.message == f"refusing to write {name!r}: outside the output folder {root}"
    assert raised.value.hint == "use a plain relative name"
    assert tree(tmp_path) == []  # every name is checked before anything is written


def test_a_name_through_a_link_leading_out_of_the_output_folder_is_refused(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "digests").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError) as raised:
        safe_join(root, "digests/x.html")
    assert raised.value.message == (f"refusing to write 'digests/x.html': it resolves outside the output "
                                    f"folder {root}")
    assert raised.value.hint == "remove the symlink or rename the file"
    assert list(elsewhere.iterdir()) == []


def test_a_file_that_is_a_link_leading_out_is_refused_in_a_set_sharing_its_folder(tmp_path: Path) -> None:
    """A set resolves each folder once (safe_join's `folders`); a file that is itself a link is still
    followed, even after a sibling in the same folder was checked."""
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (root / "pages").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "pages" / "b.html").symlink_to(elsewhere / "b.html")
    folders: dict[Path, Path] = {}
    assert safe_join(root, "pages/a.html", folders) == (root / "pages" / "a.html").resolve()
    with pytest.raises(OutputError) as raised:
        safe_join(root, "pages/b.html", folders)
    assert "it resolves outside the output folder" in raised.value.message
    with pytest.raises(OutputError):
        write_outputs(root, {"pages/a.html": b"a", "pages/b.html": b"b", "pages/c.html": b"c"})
    assert list(elsewhere.iterdir()) == [] and not (root / "pages" / "a.html").exists()


def test_a_fifo_in_place_of_an_output_is_replaced_not_waited_for(tmp_path: Path) -> None:
    """Comparing with what is on disk opens without blocking: a named pipe where a feed belongs is not read
    (which would wait for a writer forever) but replaced by the file."""
    root = tmp_path / "out"
    root.mkdir()
    os.mkfifo(root / "atom.xml")
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(write_outputs(root, {"atom.xml": b"<feed/>"})),
                              daemon=True)
    worker.start()
    worker.join(30)
    assert result == [(["atom.xml"], [])], "write_outputs waited on the FIFO"
    assert (root / "atom.xml").is_file() and (root / "atom.xml").read_bytes() == b"<feed/>"


def test_the_temporary_file_is_made_beside_its_target_not_in_the_system_temp_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename is atomic only within one file system: the temporary file must not be in /tmp (often a
    tmpfs). With the system temp folder missing, every write still works."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-temp-folder"))
    root = tmp_path / "out"
    assert write_outputs(root, {"rss.xml": b"<rss/>"}) == (["rss.xml"], [])
    assert write_atomic(root / "atom.xml", b"<feed/>")
    assert write_outputs(root, {"rss.xml": b"<rss>2</rss>"}) == (["rss.xml"], [])
    assert tree(root) == ["atom.xml", "rss.xml"]
    assert not (tmp_path / "no-such-temp-folder").exists()


def test_a_killed_runs_debris_is_removed_and_other_dot_files_are_kept(tmp_path: Path) -> None:
    (tmp_path / "rss.xml").write_bytes(b"old")
    debris = [".rss.xml.k3j2_x1.tmp", ".rss.xml.0123456789ab.old"]  # a temporary file and a backup
    for name in debris:
        (tmp_path / name).write_bytes(b"half")
    kept = {".rss.xml.swp": b"an editor's swap file", ".rss.xml.sig": b"a signature the user keeps"}
    for name, data in kept.items():
        (tmp_path / name).write_bytes(data)
    assert write_outputs(tmp_path, {"rss.xml": b"new"}) == (["rss.xml"], [])
    assert tree(tmp_path) == sorted([*kept, "rss.xml"])
    assert {name: (tmp_path / name).read_bytes() for name in kept} == kept


def test_write_atomic_leaves_a_file_that_already_holds_the_bytes_alone(tmp_path: Path) -> None:
    path = tmp_path / "reader-1.eml"
    assert write_atomic(path, b"same") is True
    before = os.stat(path)
    assert write_atomic(path, b"same") is False
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert write_atomic(path, b"other") is True
    assert path.read_bytes() == b"other"


def test_compare_outputs_says_what_a_write_would_change_and_writes_nothing(tmp_path: Path) -> None:
    """What `publish --dry-run` reports: the names whose bytes differ (or that are missing), and the rest."""
    root = tmp_path / "out"
    assert compare_outputs(root, {"rss.xml": b"a", "atom.xml": b"b"}) == (["atom.xml", "rss.xml"], [])
    assert not root.exists()
    write_outputs(root, {"rss.xml": b"a", "atom.xml": b"b", "digests/d.html": b"c"})
    stamps = {name: os.stat(root / name).st_mtime_ns for name in ("rss.xml", "atom.xml", "digests/d.html")}
    files = {"rss.xml": b"a", "atom.xml": b"changed", "digests/d.html": b"c", "feed.json": b"{}"}
    assert compare_outputs(root, files) == (["atom.xml", "feed.json"], ["digests/d.html", "rss.xml"])
    assert {name: os.stat(root / name).st_mtime_ns for name in stamps} == stamps
    assert not (root / "feed.json").exists()
    with pytest.raises(OutputError, match=r"refusing to write '\.\./x'"):
        compare_outputs(root, {"../x": b"x"})
