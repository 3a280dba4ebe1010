"""The shared rate limit (publisher/deliver/ratelimit.py): one rate for all workers together, a per-domain rate,
stop() ends a wait, and no limit costs no round trip. Real PostgreSQL (the pg_url fixture), real processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.deliver.ratelimit import SharedLimit
from publisher.errors import StateError
from publisher.state.location import StateLocation, file_location, locate
from publisher.state.schema import metadata, rate_buckets
from tests.pgserver import PgServer

REPO = Path(__file__).resolve().parent.parent
START_DELAY = 2.0  # seconds for the worker processes to start and import before the timed window opens

# One process: a thread per domain pattern, each with its own SharedLimit, acquiring until the window ends.
# Prints {pattern: messages acquired inside the window}. A pattern with {n} cycles over 5 domains.
WORKER = """
import json, sys, threading, time
from pathlib import Path
from publisher.deliver.ratelimit import SharedLimit
from publisher.state.location import locate

url, rate, domain_rate, start, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), \
    float(sys.argv[4]), float(sys.argv[5])
patterns = sys.argv[6:]
end = start + seconds
counts = {}

def run(pattern):
    limit = SharedLimit(locate(url, Path("."), {}, "test"), rate, domain_rate, stop=lambda: time.time() >= end)
    n = 0
    while time.time() < start:
        time.sleep(0.002)
    while limit.acquire(pattern.format(n=n % 5)):
        if time.time() >= end:
            break
        n += 1
    limit.close()
    counts[pattern] = n

threads = [threading.Thread(target=run, args=(p,)) for p in patterns]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(counts))
"""


def pg_location(url: str) -> StateLocation:
    """The database of `url`, with the publisher schema in it."""
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    return locate(url, Path("."), {}, "test")


def run_workers(url: str, rate: float, domain_rate: float, seconds: float,
                patterns: list[list[str]]) -> list[dict[str, int]]:
    """One process per entry of `patterns`, all timed over the same window; each one's counts."""
    start = time.time() + START_DELAY
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(rate), str(domain_rate), str(start),
                               str(seconds), *mine], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for mine in patterns]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_three_processes_share_one_rate(pg_url: str) -> None:
    pg_location(pg_url)
    rate, seconds, workers = 50.0, 2.0, 3
    counts = run_workers(pg_url, rate, 0.0, seconds, [["x{n}.example"]] * workers)
    total = sum(c["x{n}.example"] for c in counts)
    grant = max(1, int(rate * 0.1))
    ceiling = rate * seconds + rate + workers * grant  # the window, a full bucket at the start, grants in hand
    assert total <= ceiling, counts
    assert total >= 0.8 * rate * seconds, counts  # the bucket refills: the workers are not starved
    assert all(c["x{n}.example"] > 0 for c in counts), counts  # every worker got its share


def test_a_domain_limit_holds_across_processes_while_other_domains_go_faster(pg_url: str) -> None:
    pg_location(pg_url)
    domain_rate, seconds = 10.0, 2.0
    patterns = [["Slow.Example", f"fast{{n}}.p{p}.example"] for p in range(3)]  # one domain, in any case
    counts = run_workers(pg_url, 0.0, domain_rate, seconds, patterns)
    slow = sum(c["Slow.Example"] for c in counts)
    assert slow <= domain_rate * seconds + domain_rate + 3, counts
    assert slow >= 0.8 * domain_rate * seconds, counts
    for p, c in enumerate(counts):  # five domains of its own each: about five times the one shared domain
        assert c[f"fast{{n}}.p{p}.example"] > 2 * slow, counts


def test_the_global_rate_and_the_domain_rate_both_hold(pg_url: str) -> None:
    location = pg_location(pg_url)
    limit = SharedLimit(location, 100.0, 5.0)
    try:
        started = time.monotonic()
        for _ in range(15):  # a full domain bucket (5), then 10 more at 5/s: about 2 s
            assert limit.acquire("one.example")
        elapsed = time.monotonic() - started
    finally:
        limit.close()
    assert 1.6 <= elapsed <= 4.0, elapsed
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        names = set(conn.execute(sa.select(rate_buckets.c.name)).scalars())
    engine.dispose()
    assert names == {"*", "domain:one.example"}


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_stop_ends_a_wait(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    location = pg_location(request.getfixturevalue("pg_url")) if engine == "postgresql" \
        else file_location(tmp_path / "state.sqlite")
    stop_at = [float("inf")]
    limit = SharedLimit(location, 0.5, 0.0, stop=lambda: time.monotonic() >= stop_at[0])
    try:
        assert limit.acquire("a.example")  # the bucket's one token
        stop_at[0] = time.monotonic() + 0.3
        started = time.monotonic()
        assert limit.acquire("a.example") is False  # the next token is 2 s away: stopped before
        elapsed = time.monotonic() - started
    finally:
        limit.close()
    assert 0.25 <= elapsed <= 0.8, elapsed


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_no_limit_makes_no_round_trip() -> None:
    url = f"postgresql+psycopg://publisher:s3cret@127.0.0.1:{closed_port()}/nothing"  # no server there
    limit = SharedLimit(locate(url, Path("."), {}, "test"), 0.0, 0.0)
    for n in range(1000):
        assert limit.acquire(f"d{n}.example")
    assert limit.round_trips == 0 and limit.conn is None
    limit.close()


def test_an_sqlite_state_limits_in_process_without_the_database(tmp_path: Path) -> None:
    clock = [0.0]
    state = tmp_path / "state.sqlite"
    limit = SharedLimit(file_location(state), 10.0, 2.0, sleep=lambda s: clock.__setitem__(0, clock[0] + s),
                        monotonic=lambda: clock[0])
    for n in range(100):
        assert limit.acquire(f"d{n % 50}.example")  # 50 domains: only the global rate binds
    assert 8.9 <= clock[0] <= 9.2, clock  # 10 at once (the burst), then 90 at 10/s
    before = clock[0]
    for _ in range(6):
        assert limit.acquire("one.example")  # 2 at once (0.1 s apart: the global rate), then 4 at 2/s
    assert 1.9 <= clock[0] - before <= 2.1, clock
    assert limit.round_trips == 0 and not state.exists()


def test_an_unreachable_server_is_waited_for_then_a_state_error_without_the_password() -> None:
    url = f"postgresql+psycopg://publisher:s3cret@127.0.0.1:{closed_port()}/nothing"
    limit = SharedLimit(locate(url, Path("."), {}, "test"), 10.0, 0.0, retry_for=1.0)
    started = time.monotonic()
    with pytest.raises(StateError) as caught:
        limit.acquire("a.example")
    elapsed = time.monotonic() - started
    text = str(caught.value)
    assert "s3cret" not in text and "127.0.0.1" in text and "rate limit" in text
    assert limit.conn is None
    assert 1.0 <= elapsed <= 3.0, elapsed  # tried again after 0.5 s, then 1 s more: given up


def test_a_restarted_server_is_waited_for_and_the_limit_goes_on(pg_server: PgServer, pg_url: str) -> None:
    location = pg_location(pg_url)
    limit = SharedLimit(location, 20.0, 0.0)
    try:
        for _ in range(20):
            assert limit.acquire("a.example")  # the full bucket
        pg_server.stop()
        restarted = threading.Timer(1.5, pg_server.start)
        restarted.start()
        started = time.monotonic()
        for _ in range(10):
            assert limit.acquire("a.example")  # no error: waits for the server, then takes tokens again
        elapsed = time.monotonic() - started
        restarted.join()
    finally:
        limit.close()
    assert elapsed >= 1.4, elapsed
    assert limit.down_since is None
