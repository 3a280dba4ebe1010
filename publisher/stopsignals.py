"""Stop signals handled off the main thread.

A Python signal handler runs in the main thread between two bytecodes, also while that thread holds a
lock: inside `threading.Event.wait` it holds the event's own lock for a few bytecodes after each timeout.
A handler that takes a lock itself (`Event.set`, a log line, starting a thread) then waits for its own
thread and the process never stops (seen as a `publisher schedule` that ignored SIGTERM). Here the
interpreter's C-level handler writes the signal's number to a pipe (`signal.set_wakeup_fd`), the Python
handler does nothing, and a thread reads the pipe and calls back: the callback may take any lock.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

log = logging.getLogger("publisher.schedule")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_END = b"\0"  # no signal has the number 0: the reader's cue to end


def _ignore(_number: int, _frame: object) -> None:
    """The Python-level handler: the signal's number is already in the pipe."""


@contextmanager
def calling(callback: Callable[[int], None], signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """While inside: each of `signals` calls `callback(number)` from a thread of its own (one at a time,
    in the order they came). Call from the main thread; the previous handlers come back on exit. Other
    signals that reach the wakeup pipe (any with a Python handler) are not passed on, and a callback that
    fails is logged: the next signal is still handled."""
    with ExitStack() as undo:
        read, write = os.pipe()
        undo.callback(os.close, read)
        undo.callback(os.close, write)
        os.set_blocking(write, False)  # the wakeup fd must not block the signal handler
        previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)  # ValueError off the main thread
        undo.callback(signal.set_wakeup_fd, previous_fd)
        for number in signals:
            undo.callback(signal.signal, number, signal.signal(number, _ignore))
        reader = threading.Thread(target=_deliver, args=(read, callback, frozenset(signals)), name="publisher-signals",
                                  daemon=True)
        reader.start()
        undo.callback(reader.join)
        undo.callback(os.write, write, _END)  # undone first: the reader ends, then the handlers come back
        yield


def _deliver(read: int, callback: Callable[[int], None], wanted: frozenset[int]) -> None:
    while True:
        for number in os.read(read, 64):
            if number == 0:
                return
            if number in wanted:
                _call(callback, number)


def _call(callback: Callable[[int], None], number: int) -> None:
    try:
        callback(number)
    except Exception:  # one failed stop must not leave the process deaf to the next signal
        log.exception("handling signal %d failed", number)
