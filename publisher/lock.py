"""One run at a time: `publish`, `send` and the scheduled job share one lock; a scheduler holds a second.

Each lock is a file next to the state database, locked with fcntl.flock: the operating system releases
it when the process ends in any way (kill -9 included), so a stale lock cannot survive its holder. The
holder writes its pid and what it does into the file, so a process that finds the lock taken can say
who holds it. The file is never deleted (deleting a flock'ed file lets two processes lock two inodes).

    <state>.lock           one run at a time: publish, send, the scheduled job
    <state>.schedule.lock  one `publisher schedule` per state, held for the scheduler's whole life

A state on a database server has no file to lock: its run lock is an advisory lock (publisher.state.dblock),
and its schedulers elect a leader with a lease instead (publisher.state.leader).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from publisher.errors import PublisherError, StateError
from publisher.state.location import StateLocation, file_location

log = logging.getLogger(__name__)
LOCK_HINT = ("free some space or fix the permissions there, or set paths.state to a folder where the "
             "lock file can be written")
RUN = ".lock"
SCHEDULER = ".schedule.lock"
POLL = 0.1  # seconds between tries while waiting


class Busy(PublisherError):
    """The lock is held by another process. Exit code 75 (EX_TEMPFAIL, sysexits.h): try again later;
    distinct from 1 (a bad article) and 2 (bad config), so a wrapper or systemd can tell them apart."""

    exit_code = 75

    def __init__(self, message: str, hint: str, *, pid: int | None, path: Path | None) -> None:
        super().__init__(message, hint)
        self.pid = pid
        self.path = path


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as written in its file (pid None: not written yet, or unreadable)."""

    pid: int | None
    what: str
    since: datetime | None

    def describe(self) -> str:
        if self.pid is None:
            return "another process (pid not known yet) is running on this state"
        since = f" since {self.since:%Y-%m-%d %H:%M:%S} UTC" if self.since else ""
        return f"{self.what or 'another process'} (pid {self.pid}) is running on this state{since}"


def lock_path(state: Path, suffix: str = RUN) -> Path:
    return state.with_name(state.name + suffix)


def holder(path: Path) -> Holder:
    """Read who holds (or last held) the lock file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
        since = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        data = json.loads(text)
        return Holder(int(data["pid"]), str(data.get("what", "")), since)
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(None, "", None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _current_holder(path: Path, tries: int = 10) -> Holder:
    """The holder, allowing it a moment to write its pid (a dead pid is a previous holder's)."""
    for _ in range(tries):
        held = holder(path)
        if held.pid is not None and _alive(held.pid):
            return held
        time.sleep(POLL / 2)
    return Holder(None, "", None)


def _failed(path: Path, doing: str, error: OSError) -> StateError:
    """Any OSError on the lock file (a full disk, a read-only folder, ...) as one line naming it."""
    reason = error.strerror or str(error)
    return StateError(f"{path}: cannot {doing} the lock file: {reason}", LOCK_HINT)


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StateError(f"{path}: cannot open the lock file: {e.strerror}",
                         "check that the folder of paths.state exists and is writable") from e


def _try_lock(fd: int, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise _failed(path, "lock", e) from e
    return True


def _write_holder(fd: int, path: Path, what: str) -> None:
    """Write who holds the lock (written first, then cut to length: a full disk fails before any change)."""
    data = json.dumps({"pid": os.getpid(), "what": what}).encode() + b"\n"
    try:
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.ftruncate(fd, len(data))
    except OSError as e:
        raise _failed(path, "write", e) from e


def _release(fd: int, path: Path) -> None:
    """Empty the file (nobody holds it now) and unlock; the lock goes with the descriptor anyway."""
    try:
        os.ftruncate(fd, 0)
    except OSError as e:
        log.warning("%s: cannot empty the lock file: %s", path, e.strerror or e)
    fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def hold(state: Path, suffix: str, wait: float, what: str, *, hint: str,
         stop: Callable[[], bool] | None = None) -> Iterator[Path]:
    """Hold the lock `<state><suffix>` for `what` (a short name: publish, send, the scheduled run),
    waiting up to `wait` seconds (0: not at all) for its holder; else raise Busy naming the holder's
    pid, with `hint` as what to do. `stop()` returning true gives up waiting early."""
    path = lock_path(state, suffix)
    fd = _open(path)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while not _try_lock(fd, path):
            stopping = stop is not None and stop()
            if stopping or time.monotonic() >= deadline:
                held = _current_holder(path)
                waited = " (stopping)" if stopping else f" after waiting {wait:g} s" if wait > 0 else ""
                raise Busy(f"cannot start {what}{waited}: {held.describe()} (lock {path})", hint,
                           pid=held.pid, path=path)
            time.sleep(POLL)
        _write_holder(fd, path, what)  # when it fails, closing the file below releases the lock
        try:
            yield path
        finally:
            _release(fd, path)
    finally:
        os.close(fd)


def acquire(state: StateLocation | Path, wait: float, what: str, *, hint: str | None = None,
            stop: Callable[[], bool] | None = None) -> AbstractContextManager[object]:
    """The run lock shared by publish, send and the scheduled job (see `hold`): a file lock beside an
    SQLite state, an advisory lock in a database server (a file lock cannot see another machine)."""
    hint = hint or "wait for it to finish, or give --wait SECONDS to wait for it"
    state = file_location(state) if isinstance(state, Path) else state
    if state.path is None:
        from publisher.state import dblock  # SQLAlchemy: imported only for a state on a server

        return dblock.hold(state, dblock.RUN, wait, what, stop=stop,
                           busy=lambda message: Busy(message, hint, pid=None, path=None))
    return hold(state.path, RUN, wait, what, stop=stop, hint=hint)


def acquire_scheduler(state: StateLocation | Path) -> AbstractContextManager[object]:
    """The scheduler's lifetime lock on an SQLite state: a second `publisher schedule` is refused at once.
    (On a database server several schedulers may run: one leads, see publisher.state.leader.)"""
    hint = ("only one 'publisher schedule' may run per state database; stop the other one "
            "(kill its pid) or give this one its own paths.state")
    state = file_location(state) if isinstance(state, Path) else state
    if state.path is None:
        raise ValueError(f"{state}: a scheduler on a database server leads by a lease, not a lock")
    return hold(state.path, SCHEDULER, 0, "publisher schedule", hint=hint)
