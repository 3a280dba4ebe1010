"""What every command module shares: the common options, settings loading, the clock, the run lock,
the progress bar, and turning a PublisherError into one line on stderr and its exit code.

Only click and the standard library are imported here; the library is imported inside the helpers.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from publisher.config import Settings

F = TypeVar("F", bound=Callable[..., Any])
PROGRESS_FROM = 200  # draw a progress bar when there are at least this many files


def config_option(func: F) -> F:
    return click.option("--config", "-c", "config", type=click.Path(path_type=Path, dir_okay=False),
                        help="Config file [default: ./publisher.toml, else built-in defaults].")(func)


def wait_option(func: F) -> F:
    return click.option("--wait", type=click.FloatRange(0), default=0.0, show_default=True, metavar="SECONDS",
                        help="Wait this long for a run in progress (e.g. the scheduler's) to finish.")(func)


def clock_option(func: F) -> F:
    return click.option("--clock", metavar="ISO-TIME",
                        help="Pretend the time is this (e.g. 2026-11-25T09:00:00Z), for reproducible output.")(func)


def fail(error: Exception, code: int) -> NoReturn:
    """End the command: the error on one line of stderr, and the exit code."""
    click.echo(f"error: {error}", err=True)
    sys.exit(code)


def read_settings(config: Path | None) -> Settings:
    """The validated settings of --config (or ./publisher.toml); a bad config ends the command."""
    from publisher.config import load_settings
    from publisher.errors import PublisherError

    try:
        return load_settings(config, Path.cwd())
    except PublisherError as e:
        fail(e, e.exit_code)


@contextmanager
def locked(settings: Settings, wait: float, what: str, skip: bool = False) -> Iterator[None]:
    """One run at a time (publish, send, the scheduled job); a busy lock ends the command (exit 75), and
    so does a lock file that cannot be written (exit 2)."""
    from publisher.errors import PublisherError
    from publisher.lock import acquire

    if skip:
        yield
        return
    try:
        with acquire(settings.paths.state, wait, what):
            yield
    except PublisherError as e:  # lock.Busy (75), or the lock file's StateError (2)
        fail(e, e.exit_code)


def parse_clock(clock: str | None) -> datetime:
    """--clock as an aware datetime (UTC when it names no zone); the real time when it is not given."""
    if not clock:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(clock.replace("Z", "+00:00"))
    except ValueError as e:
        raise click.BadParameter(f"{clock!r} is not an ISO time such as 2026-11-25T09:00:00Z",
                                 param_hint="--clock") from e
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def clock_source(clock: str | None) -> Callable[[], datetime]:
    """A function giving the time: always --clock when it is given, else the real time at each call."""
    fixed = parse_clock(clock) if clock else None
    return (lambda: fixed) if fixed else (lambda: datetime.now(UTC))


class ProgressBar:
    """Progress on stderr, one line per stage, shown only for long stages in a terminal (never in a log or a
    pipe): `start(total, label)` ends the previous stage's line and begins the next one; each line shows the
    stage's name, a bar, the percentage, the estimated time left and the time spent so far."""

    def __init__(self, label: str = "reading articles") -> None:
        self.bar: Any = None
        self.label = label
        self.started = 0.0

    def start(self, total: int, label: str | None = None) -> None:
        self.close()
        if total >= PROGRESS_FROM and sys.stderr.isatty():
            self.started = time.perf_counter()
            self.bar = click.progressbar(length=total, label=label or self.label, file=sys.stderr,
                                         item_show_func=self._elapsed)
            self.bar.__enter__()

    def _elapsed(self, _item: object) -> str:
        return f"{time.perf_counter() - self.started:.1f} s"

    def advance(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
