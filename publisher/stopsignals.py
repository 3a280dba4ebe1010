"""Stop signals handled off the main thread.

A Python signal handler runs in the main thread between two bytecodes, also while that thread holds a
lock: inside `threading.Event.wait` it holds the event's own lock for a few bytecodes after each timeout.
A handler that takes a lock itself (`Event.set`, a log line, starting a thread) then waits for its own
thread and the process never stops (seen as a `publisher schedule` that ignored SIGTERM). Here the
interpreter's C-level handler writes the signal's number to a pipe (`signal.set_wakeup_fd`), the Python
handler does nothing, and a thread reads the pipe and calls back: the callback may take any lock.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_END = b"\0"  # no signal has the number 0: the reader's cue to end


def _ignore(_number: int, _frame: object) -> None:
    """The Python-level handler: the signal's number is already in the pipe."""


@contextmanager
def calling(callback: Callable[[int], None], signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """While inside: each of `signals` calls `callback(number)` from a thread of its own (one at a time,
    in the order they came). Call from the main thread; the previous handlers come back on exit."""
    read, write = os.pipe()
    os.set_blocking(write, False)  # the wakeup fd must not block the signal handler
    reader = threading.Thread(target=_deliver, args=(read, callback), name="publisher-signals", daemon=True)
    reader.start()
    previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    previous = {number: signal.signal(number, _ignore) for number in signals}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(previous_fd)
        os.write(write, _END)
        reader.join()
        os.close(read)
        os.close(write)


def _deliver(read: int, callback: Callable[[int], None]) -> None:
    while True:
        for number in os.read(read, 64):
            if number == 0:
                return
            callback(number)
