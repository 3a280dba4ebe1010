"""Atomic, deterministic writes inside the output folder only.

One file: a temporary file beside it (written, fsynced), then a rename (`write_atomic`). A set of
files (`write_outputs`): every temporary file is written and fsynced first, then each changed file is
renamed into place, a hard link to its old version kept aside; if any step fails, the files already
replaced get their old version back, so the set on disk is the old set, and OutputError names the
file. Temporary files are dot-files (`.NAME.XXXX.tmp`, backups `.NAME.XXXX.old`): never output, and
removed by the next write of NAME if a killed run left them.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from publisher.errors import OutputError

log = logging.getLogger(__name__)
BATCH_FROM = 64  # files (or folders) from which a set is made durable by one os.sync()
HINT = "make it writable (permissions, chattr -i) or move away what is in its place, then run again"


def safe_join(root: Path, name: str, folders: dict[Path, Path] | None = None) -> Path:
    """root/name, refusing absolute names and anything that would leave root (like Pelican's sanitised_join).
    `folders`, shared by the calls of one set of files, keeps each folder's real path (root's too), so a
    set of many files resolves each folder once; a file that is itself a link is always followed."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise OutputError(f"refusing to write {name!r}: outside the output folder {root}",
                          "use a plain relative name")
    known = {} if folders is None else folders
    target = _real(root / Path(*parts), known)
    if not target.is_relative_to(_real_folder(root, known)):
        raise OutputError(f"refusing to write {name!r}: it resolves outside the output folder {root}",
                          "remove the symlink or rename the file")
    return target


def _real_folder(folder: Path, known: dict[Path, Path]) -> Path:
    real = known.get(folder)
    if real is None:
        real = known[folder] = folder.resolve()
    return real


def _real(path: Path, known: dict[Path, Path]) -> Path:
    """path.resolve(), the folder part looked up in `known` (a link at `path` itself is resolved whole)."""
    if path.is_symlink():
        return path.resolve()
    return _real_folder(path.parent, known) / path.name


def _same(path: Path, data: bytes) -> bool:
    """Whether `path` is a file that already holds exactly `data` (a folder, a FIFO or an unreadable file in
    its place does not: opened without blocking, and only a regular file of the same size is read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
            return False
        with open(fd, "rb", closefd=False) as handle:
            return handle.read() == data
    except OSError:
        return False
    finally:
        os.close(fd)


def _temp(path: Path, data: bytes, *, sync: bool = True) -> Path:
    """`data` in a new temporary file beside `path`, on disk (fsync) before this returns (unless `sync`
    is False: the caller then makes a whole batch durable at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(name, 0o644)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _durable(temps: Sequence[Path]) -> None:
    """Make files written without fsync durable: one fsync each for a few (an os.sync() would also flush
    whatever else the machine has not written yet), one os.sync() for a large set."""
    if len(temps) >= BATCH_FROM:
        os.sync()
        return
    for temp in temps:
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sync_folder(folder: Path) -> None:
    """Make the renames in `folder` durable (fsync of the directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:  # some file systems refuse fsync on a directory: the rename is done anyway
        log.debug("fsync of %s: %s", folder, e)


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` to `path` through a temporary file and a rename. False when the bytes are already there."""
    if _same(path, data):
        return False
    tmp = _temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    return True


@dataclass
class _Swap:
    """One file of a set being replaced: its new bytes wait in `temp`; `backup` links its old version."""

    name: str
    path: Path
    temp: Path
    backup: Path | None = None
    replaced: bool = False


def _clear_stale(path: Path) -> None:
    """Remove the temporary files a killed earlier write of `path` left beside it."""
    pattern = f".{glob.escape(path.name)}.*"
    for stale in path.parent.glob(pattern) if path.parent.is_dir() else ():
        if stale.name.endswith((".tmp", ".old")) and stale.is_file():
            stale.unlink(missing_ok=True)


def _backup(path: Path) -> Path | None:
    """A second name for the file now at `path` (a hard link, else a copy), or None when there is none."""
    if not path.is_file():
        return None
    backup = path.with_name(f".{path.name}.{secrets.token_hex(6)}.old")
    try:
        os.link(path, backup)
    except OSError:  # no hard links on this file system: a copy of the old bytes
        return _temp(path, path.read_bytes()).rename(backup)
    return backup


def _stage(root: Path, names: Sequence[str], targets: Mapping[str, Path], files: Mapping[str, bytes]) -> list[_Swap]:
    """Every new file written to a temporary file, not synced yet (`write_outputs` makes the whole set
    durable at once, `_durable`); on failure the temporary files are removed."""
    swaps: list[_Swap] = []
    for name in names:
        try:
            _clear_stale(targets[name])
            swaps.append(_Swap(name, targets[name], _temp(targets[name], files[name], sync=False)))
        except OSError as e:
            _discard(swaps)
            raise OutputError(f"{root / name}: cannot write: {e.strerror or e}; no file was replaced",
                              "check the output folder's permissions and free space") from e
        except BaseException:  # interrupted (Ctrl-C): no debris
            _discard(swaps)
            raise
    return swaps


def _commit(root: Path, swaps: Sequence[_Swap]) -> None:
    """Rename every temporary file into place; on failure put the old files back and raise OutputError."""
    for swap in swaps:
        try:
            swap.backup = _backup(swap.path)
            os.replace(swap.temp, swap.path)
            swap.replaced = True
        except OSError as e:
            left = _rollback(swaps)
            done = f"could not restore {', '.join(left)}" if left else "every file keeps its old version"
            raise OutputError(f"{root / swap.name}: cannot replace it: {e.strerror or e}; {done}", HINT) from e
        except BaseException:  # interrupted (Ctrl-C): the old set back, then stop
            _rollback(swaps)
            raise
    top = Path(os.path.realpath(root))
    folders = sorted({folder for swap in swaps for folder in _up_to(top, swap.path.parent)})
    if len(folders) >= BATCH_FROM:  # many folders (article pages): one sync of the file system
        os.sync()
    for folder in folders if len(folders) < BATCH_FROM else ():
        _sync_folder(folder)
    _discard(swaps)


def _up_to(top: Path, folder: Path) -> list[Path]:
    """`folder` and the folders above it up to the output folder `top` (its real path): a folder made for
    a new file (a page's `posts/<slug>/`, a tag's `tags/<tag>/`) is durable only once the folder that
    lists it is synced too."""
    chain = [folder]
    while chain[-1] != top and top in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _rollback(swaps: Sequence[_Swap]) -> list[str]:
    """Give each replaced file its old version back (or remove it if it is new); the names that failed."""
    failed: list[str] = []
    for swap in swaps:
        try:
            if swap.replaced and swap.backup is not None:
                os.replace(swap.backup, swap.path)
            elif swap.replaced:
                swap.path.unlink()
        except OSError as e:
            log.error("%s: cannot restore the old version: %s", swap.path, e)
            failed.append(swap.name)
    _discard(swaps)
    return failed


def _discard(swaps: Sequence[_Swap]) -> None:
    """Remove the temporary files and backups that are still there."""
    for swap in swaps:
        for leftover in (swap.temp, swap.backup):
            if leftover is not None:
                leftover.unlink(missing_ok=True)


@dataclass
class Staged:
    """Files of a large set (article pages) already in temporary files beside their targets, so their
    bytes need not be held until the set is written: `write_outputs` puts them in place with the rest."""

    swaps: list[_Swap]

    @property
    def names(self) -> list[str]:
        return [swap.name for swap in self.swaps]

    def discard(self) -> None:
        _discard(self.swaps)


def stage_outputs(root: Path, files: Mapping[str, bytes]) -> tuple[Staged, list[str]]:
    """The files that differ from what is on disk, staged (not synced yet: `write_outputs` makes the
    whole set durable at once); and the names that already hold their bytes."""
    written, unchanged = compare_outputs(root, files)
    folders: dict[Path, Path] = {}
    targets = {name: safe_join(root, name, folders) for name in written}
    _mkdir(root)
    return Staged(_stage(root, written, targets, files)), unchanged


def _mkdir(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{root}: cannot create the output folder: {e.strerror or e}",
                          "check its parent's permissions, or set [paths] output") from e


def write_outputs(root: Path, files: Mapping[str, bytes], staged: Sequence[Staged] = ()) -> tuple[list[str], list[str]]:
    """Write each name -> bytes under root, with the `staged` files, all together or none (see the
    module's text); files that already hold their bytes are not touched. Returns (written, unchanged)
    names of `files`."""
    extra = [swap for batch in staged for swap in batch.swaps]
    try:
        written, unchanged = compare_outputs(root, files)  # every name checked before any write
        folders: dict[Path, Path] = {}
        targets = {name: safe_join(root, name, folders) for name in written}
        _mkdir(root)
        swaps = _stage(root, written, targets, files)
    except BaseException:
        _discard(extra)
        raise
    try:
        _durable([swap.temp for swap in [*swaps, *extra]])
    except OSError as e:
        _discard([*swaps, *extra])
        raise OutputError(f"{root}: cannot make the new files durable: {e.strerror or e}; no file was replaced",
                          "check the output folder's disk and free space") from e
    _commit(root, [*swaps, *extra])
    return written, unchanged


def compare_outputs(root: Path, files: Mapping[str, bytes]) -> tuple[list[str], list[str]]:
    """What write_outputs would do, without writing: (would be written, unchanged)."""
    changed: list[str] = []
    same: list[str] = []
    folders: dict[Path, Path] = {}
    for name in sorted(files):
        (same if _same(safe_join(root, name, folders), files[name]) else changed).append(name)
    return changed, same


def remove_outputs(root: Path, names: Sequence[str]) -> list[str]:
    """Remove files an output made before and makes no more (names from the state, never anything else),
    and the folders they leave empty, up to (not including) root. Returns the names removed."""
    removed: list[str] = []
    top = root.resolve()
    for name in sorted(names):
        path = safe_join(root, name)
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise OutputError(f"{root / name}: cannot remove it: {e.strerror or e}", HINT) from e
        removed.append(name)
        _remove_empty(path.parent, top)
    return removed


def _remove_empty(folder: Path, top: Path) -> None:
    """Remove `folder` and its parents while they are empty and inside `top`."""
    while folder != top and folder.is_relative_to(top):
        try:
            folder.rmdir()
        except OSError:  # not empty (or not ours to remove): stop
            return
        folder = folder.parent
