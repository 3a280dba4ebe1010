"""write.py on a real file system: a write killed or failing mid-way leaves the old bytes or the new ones,
never a mix; a set of files is replaced together or not at all. No mocks: the kernel kills the writer
(RLIMIT_FSIZE -> SIGXFSZ at a chosen byte, SIGKILL at chosen moments) and real folders block renames."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import feedparser
import pytest

from publisher.errors import OutputError
from publisher.write import BATCH_FROM, stage_outputs, write_atomic, write_outputs
from tests.conftest import REPO, Site

OLD = b"<old>" + b"o" * (3 * 2**20) + b"</old>\n"
NEW = b"<new>" + b"n" * (4 * 2**20) + b"</new>\n"
SET = ("atom.xml", "feed.json", "rss.xml")

CHILD = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from publisher.errors import OutputError
    from publisher.write import write_outputs
    root, limit, ignore = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "ignore"
    data = sys.stdin.buffer.read()
    if not ignore:  # CPython ignores SIGXFSZ (the write then fails with EFBIG); by default it kills
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        write_outputs(root, {"rss.xml": data})
    except OutputError as e:
        print(e)
        sys.exit(3)
""")


def write_with_limit(root: Path, limit: int, *, ignore: bool = False) -> subprocess.CompletedProcess[str]:
    """write_outputs(root, {"rss.xml": NEW}) in a process whose files may not grow past `limit` bytes."""
    return subprocess.run([sys.executable, "-c", CHILD, str(root), str(limit), "ignore" if ignore else "kill"],
                          input=NEW.decode(), capture_output=True, text=True, cwd=REPO, timeout=60)


def outputs(root: Path) -> list[str]:
    """The names a reader or the judge would take for output (dot-files are temporary)."""
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("limit", [0, 1, 4096, len(NEW) // 2, len(NEW) - 1])
def test_a_write_killed_mid_file_leaves_the_old_file(tmp_path: Path, limit: int) -> None:
    (tmp_path / "rss.xml").write_bytes(OLD)
    result = write_with_limit(tmp_path, limit)
    assert result.returncode == -signal.SIGXFSZ, result.stderr  # killed by the kernel at byte `limit`
    assert (tmp_path / "rss.xml").read_bytes() == OLD
    assert outputs(tmp_path) == ["rss.xml"]
    stray = [p for p in tmp_path.iterdir() if p.name != "rss.xml"]
    assert all(p.name.startswith(".rss.xml.") and p.name.endswith(".tmp") for p in stray), stray
    assert write_outputs(tmp_path, {"rss.xml": NEW}) == (["rss.xml"], [])  # the next run clears the debris
    assert (tmp_path / "rss.xml").read_bytes() == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rss.xml"]


def test_a_write_that_completes_before_the_limit_gives_the_new_file(tmp_path: Path) -> None:
    (tmp_path / "rss.xml").write_bytes(OLD)
    result = write_with_limit(tmp_path, len(NEW))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rss.xml").read_bytes() == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rss.xml"]


def test_a_failing_write_keeps_the_old_bytes_and_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "rss.xml").write_bytes(OLD)
    result = write_with_limit(tmp_path, len(NEW) // 3, ignore=True)  # EFBIG: "File too large"
    assert result.returncode == 3, result.stderr
    assert "rss.xml: cannot write: File too large; no file was replaced" in result.stdout
    assert (tmp_path / "rss.xml").read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rss.xml"]


KILLED = textwrap.dedent("""
    import sys
    from pathlib import Path
    from publisher.write import write_outputs
    root, size = Path(sys.argv[1]), int(sys.argv[2])
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        write_outputs(root, {name: bytes([65 + n % 2]) * size for name in ("atom.xml", "feed.json", "rss.xml")})
""")


def partial_files(root: Path, size: int) -> bool:
    """Whether some file in root is caught mid-write (shorter than the full size)."""
    try:
        return any(entry.stat().st_size < size for entry in os.scandir(root))
    except FileNotFoundError:  # renamed away while we looked
        return False


@pytest.mark.parametrize("sightings", [1, 2, 5, 20])
def test_sigkill_mid_write_leaves_whole_files(tmp_path: Path, sightings: int) -> None:
    """The writer is killed the n-th time a file is seen half-written: each file is then old or new."""
    size = 4 * 2**20
    for name in SET:
        (tmp_path / name).write_bytes(b"O" * size)
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(tmp_path), str(size)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    deadline, seen = time.monotonic() + 20, 0
    while seen < sightings and time.monotonic() < deadline:
        seen += partial_files(tmp_path, size)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL and seen == sightings
    child.stdout.close()
    for name in SET:
        data = (tmp_path / name).read_bytes()
        assert len(data) == size and len(set(data)) == 1, f"{name}: a mix of versions ({len(data)} bytes)"
    assert outputs(tmp_path) == sorted(SET)


def test_the_file_is_replaced_not_overwritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "rss.xml"
    path.write_bytes(OLD)
    before = path.stat().st_ino
    with path.open("rb") as reader:
        assert write_atomic(path, NEW)
        assert reader.read() == OLD  # a reader that had the old file open still reads all of the old bytes
    assert path.stat().st_ino != before
    assert path.read_bytes() == NEW
    assert path.stat().st_mode & 0o777 == 0o644


def test_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    files = {name: name.encode() for name in SET}
    assert write_outputs(tmp_path, files) == (sorted(SET), [])
    stamps = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert write_outputs(tmp_path, {**files, "rss.xml": b"changed"}) == (["rss.xml"], ["atom.xml", "feed.json"])
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert after["atom.xml"] == stamps["atom.xml"] and after["feed.json"] == stamps["feed.json"]
    assert after["rss.xml"] != stamps["rss.xml"]


def old_set(root: Path) -> dict[str, tuple[int, bytes]]:
    """The files of the old set: name -> (inode, bytes)."""
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in sorted(root.iterdir()) if p.is_file()}


def test_one_file_that_cannot_be_replaced_leaves_the_whole_old_set(tmp_path: Path) -> None:
    write_outputs(tmp_path, {name: b"old " + name.encode() for name in SET})
    (tmp_path / "rss.xml").unlink()
    (tmp_path / "rss.xml").mkdir()  # something a rename cannot replace, like `chattr +i rss.xml`
    (tmp_path / "rss.xml" / "keep").write_text("x")
    before = old_set(tmp_path)
    with pytest.raises(OutputError) as raised:
        write_outputs(tmp_path, {name: b"new " + name.encode() for name in SET})
    assert str(raised.value).startswith(f"{tmp_path / 'rss.xml'}: cannot replace it: ")
    assert "every file keeps its old version" in str(raised.value) and "chattr -i" in raised.value.hint
    assert old_set(tmp_path) == before  # atom.xml and feed.json were replaced, then restored (same inode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SET)
    assert (tmp_path / "rss.xml" / "keep").read_text() == "x"


def test_a_file_that_cannot_be_staged_replaces_nothing(tmp_path: Path) -> None:
    write_outputs(tmp_path, {"atom.xml": b"old", "rss.xml": b"old"})
    (tmp_path / "digests").write_text("a file where a folder is needed")
    before = old_set(tmp_path)
    with pytest.raises(OutputError, match=r"digests/x\.html: cannot write: .*; no file was replaced"):
        write_outputs(tmp_path, {"atom.xml": b"new", "digests/x.html": b"new", "rss.xml": b"new"})
    assert old_set(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atom.xml", "digests", "rss.xml"]


def test_a_new_file_of_a_failed_set_is_removed_again(tmp_path: Path) -> None:
    (tmp_path / "rss.xml").mkdir()
    (tmp_path / "rss.xml" / "keep").write_text("x")
    with pytest.raises(OutputError, match=r"rss\.xml: cannot replace it"):
        write_outputs(tmp_path, {"atom.xml": b"new", "rss.xml": b"new"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rss.xml"]


def test_publish_keeps_the_three_feeds_in_agreement_when_one_cannot_be_written(site: Site) -> None:
    site.write("a.md", "---\ntitle: A\ndate: 2026-11-01\n---\nFirst.\n")
    assert site.publish().returncode == 0
    before = site.feed_bytes()
    (site.feeds / "rss.xml").unlink()
    (site.feeds / "rss.xml").mkdir()
    (site.feeds / "rss.xml" / "keep").write_text("x")
    site.write("b.md", "---\ntitle: B\ndate: 2026-11-02\n---\nSecond.\n")
    result = site.publish(clock="2026-11-26T12:00:00Z")
    assert result.returncode == 1
    assert f"{site.feeds / 'rss.xml'}: cannot replace it" in result.stderr
    now = site.feed_bytes()
    assert now == {k: v for k, v in before.items() if k != "rss.xml"} | {"rss.xml/keep": b"x"}
    assert not [p for p in site.feeds.rglob(".*")], "no temporary file is left"
    shutil.rmtree(site.feeds / "rss.xml")
    assert site.publish(clock="2026-11-26T12:00:00Z").returncode == 0
    titles = {name: [e.title for e in feedparser.parse((site.feeds / name).read_bytes()).entries]
              for name in ("rss.xml", "atom.xml")}
    assert titles == {"rss.xml": ["B", "A"], "atom.xml": ["B", "A"]}


@pytest.mark.parametrize(("count", "flushes"), [(3, 0), (BATCH_FROM, 2)])  # many: the files, then the renames
def test_staged_files_are_synced_each_when_few_and_by_one_flush_when_many(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, flushes: int) -> None:
    """A few staged files (an article added to a large site) are fsynced one by one, with every folder
    from theirs up to the output folder (a new page's folder is listed there), not by an os.sync() that
    would also wait for whatever else the machine has not written; a large set by one os.sync()."""
    staged, _ = stage_outputs(tmp_path, {f"posts/p{i}/index.html": b"<p>%d</p>" % i for i in range(count)})
    synced: list[int] = []
    fsynced: set[int] = set()  # inodes
    real_fsync = os.fsync
    monkeypatch.setattr(os, "sync", lambda: synced.append(1))

    def counted_fsync(fd: int) -> None:
        fsynced.add(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counted_fsync)
    written, _ = write_outputs(tmp_path, {"rss.xml": b"<rss/>"}, [staged])
    assert written == ["rss.xml"] and len(synced) == flushes
    pages = [tmp_path / f"posts/p{i}/index.html" for i in range(count)]
    assert [page.read_bytes() for page in pages] == [b"<p>%d</p>" % i for i in range(count)]
    if not flushes:  # each page and the feed (renamed: the same inodes), the page folders, posts/, the root
        folders = {page.parent for page in pages} | {tmp_path / "posts", tmp_path}
        assert {path.stat().st_ino for path in [*pages, *folders, tmp_path / "rss.xml"]} <= fsynced


def test_staged_files_that_cannot_be_made_durable_replace_nothing(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "p0").mkdir(parents=True)
    (tmp_path / "p0/index.html").write_bytes(b"old")
    staged, _ = stage_outputs(tmp_path, {"p0/index.html": b"new", "p1/index.html": b"also new"})

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OutputError, match="cannot make the new files durable: Input/output error"):
        write_outputs(tmp_path, {}, [staged])
    assert (tmp_path / "p0/index.html").read_bytes() == b"old" and not (tmp_path / "p1/index.html").exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["index.html"]  # no temporary file
