"""Work spread over the CPU cores: an ordered map over worker processes with a bounded number of tasks in
flight, so that what the tasks carry (parsed files, a page of articles) is never all in memory at once.

Workers start from a fork server (that has imported the parsers once), never by forking the caller: the
scheduler calls publish from a thread, and forking a threaded process can deadlock the child. The fork
server lives as long as the run, so a second pool of the same run (the feed archive after the parse)
starts its workers without importing everything again.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

WORKER_START = "forkserver"
WORKER_PRELOAD = ["publisher.pipeline", "publisher.enrich", "publisher.load.text", "publisher.load.markdown"]
MAX_WORKERS = 4
PARALLEL_PAGES = 8  # pages to render from which an output renders them in worker processes
IN_FLIGHT = 2  # pages per worker sent ahead: a page's articles are held only while it is being rendered
R = TypeVar("R")


def worker_count() -> int:
    """How many worker processes a pool uses: one per core, at most MAX_WORKERS (1: work in this process)."""
    return min(os.cpu_count() or 1, MAX_WORKERS)


def pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers come from the run's fork server."""
    context = multiprocessing.get_context(WORKER_START)
    context.set_forkserver_preload(WORKER_PRELOAD)
    return ProcessPoolExecutor(workers, mp_context=context)


def ordered_map(function: Callable[..., R], calls: Iterable[tuple[Any, ...]], *, workers: int,
                window: int) -> Iterator[R]:
    """function(*args) for each args of `calls`, in worker processes, results in the order of `calls`.
    At most `window` calls are in flight: `calls` is consumed lazily. An exception of a call is raised
    here, when its turn comes."""
    with pool(workers) as executor:
        pending: deque[Future[R]] = deque()
        for args in calls:
            pending.append(executor.submit(function, *args))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def map_pages(function: Callable[..., R], calls: Iterable[tuple[Any, ...]], count: int) -> Iterator[R]:
    """function(*args) for each of `count` calls, results in order: in worker processes (`ordered_map`) from
    PARALLEL_PAGES calls on, else in this process."""
    workers = worker_count()
    if count < PARALLEL_PAGES or workers < 2:
        return (function(*args) for args in calls)
    return ordered_map(function, calls, workers=workers, window=IN_FLIGHT * workers)
