"""publisher.stopsignals: a stop signal calls back from a thread, so a callback that takes a lock the main
thread holds when the signal comes (as `Event.wait` holds its event's lock) waits for it instead of
deadlocking the process (a `publisher schedule` that ignored SIGTERM in CI)."""

from __future__ import annotations

import os
import signal
import threading

from publisher import stopsignals


def test_a_signal_that_comes_while_the_main_thread_holds_the_callbacks_lock_is_handled_once_it_is_let_go() -> None:
    held = threading.Lock()
    called = threading.Event()
    seen: list[tuple[int, bool, bool]] = []

    def callback(number: int) -> None:
        got = held.acquire(timeout=5)  # a handler on the main thread would wait for itself: False after 5 s
        seen.append((number, got, threading.current_thread() is threading.main_thread()))
        if got:
            held.release()
        called.set()

    before = signal.getsignal(signal.SIGTERM)
    with stopsignals.calling(callback):
        with held:
            os.kill(os.getpid(), signal.SIGTERM)
            assert not called.wait(0.3), "the callback ran while the main thread held the lock"
        assert called.wait(5)
        called.clear()
        os.kill(os.getpid(), signal.SIGINT)
        assert called.wait(5)
    assert seen == [(signal.SIGTERM, True, False), (signal.SIGINT, True, False)]
    assert signal.getsignal(signal.SIGTERM) == before, "the previous handler is back"
    assert signal.set_wakeup_fd(-1) == -1, "the wakeup fd is given back"
