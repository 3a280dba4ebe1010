"""Atomic, deterministic writes inside the output folder only."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from publisher.errors import OutputError


def safe_join(root: Path, name: str) -> Path:
    """root/name, refusing absolute names and anything that would leave root (like Pelican's sanitised_join)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise OutputError(f"refusing to write {name!r}: outside the output folder {root}",
                          "use a plain relative name")
    target = (root / Path(*parts)).resolve()
    if not target.is_relative_to(root.resolve()):
        raise OutputError(f"refusing to write {name!r}: it resolves outside the output folder {root}",
                          "remove the symlink or rename the file")
    return target


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` to `path` through a temporary file and a rename. False when the bytes are already there."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def write_outputs(root: Path, files: Mapping[str, bytes]) -> tuple[list[str], list[str]]:
    """Write each name -> bytes under root; return (written, unchanged) names."""
    written: list[str] = []
    unchanged: list[str] = []
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            (written if write_atomic(safe_join(root, name), files[name]) else unchanged).append(name)
    except OSError as e:
        raise OutputError(f"{e.filename or root}: cannot write: {e.strerror}",
                          "check the output folder's permissions and free space") from e
    return written, unchanged


def compare_outputs(root: Path, files: Mapping[str, bytes]) -> tuple[list[str], list[str]]:
    """What write_outputs would do, without writing: (would be written, unchanged)."""
    changed: list[str] = []
    same: list[str] = []
    for name in sorted(files):
        path = safe_join(root, name)
        (same if path.is_file() and path.read_bytes() == files[name] else changed).append(name)
    return changed, same
