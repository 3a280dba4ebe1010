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


def test_only_the_stop_signals_are_passed_on_and_a_failed_callback_leaves_the_next_signal_handled() -> None:
    seen: list[int] = []
    called = threading.Event()

    def callback(number: int) -> None:
        seen.append(number)
        called.set()
        if len(seen) == 1:
            raise RuntimeError("can't start new thread")  # as Thread.start may

    other = signal.signal(signal.SIGUSR1, lambda _n, _f: None)  # a library's handler: its signals reach the pipe too
    try:
        with stopsignals.calling(callback):
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGTERM)
            assert called.wait(5)
            called.clear()
            os.kill(os.getpid(), signal.SIGTERM)
            assert called.wait(5), "the reader died with the first callback"
    finally:
        signal.signal(signal.SIGUSR1, other)
    assert seen == [signal.SIGTERM, signal.SIGTERM]


def test_entered_off_the_main_thread_it_refuses_and_leaves_no_pipe_or_thread_behind() -> None:
    before = set(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    raised: list[BaseException] = []

    def enter() -> None:
        try:
            with stopsignals.calling(lambda _n: None):
                pass
        except ValueError as e:
            raised.append(e)

    worker = threading.Thread(target=enter)
    worker.start()
    worker.join(5)
    assert len(raised) == 1 and "main thread" in str(raised[0])
    assert set(os.listdir("/proc/self/fd")) == before
    assert threading.active_count() == threads
