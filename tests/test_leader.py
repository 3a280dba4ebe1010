"""One scheduler leader on a PostgreSQL state: real `python -m publisher schedule` processes on a throwaway
PostgreSQL database (tests/pgserver.py), aiosmtpd for delivery, a lease of 2 s instead of 30 s
(PUBLISHER_SCHEDULER_LEASE); and the lease, the fenced runs and the advisory run lock on their own.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher import lock
from publisher.state import leader
from publisher.state.leader import Claim
from publisher.state.location import StateLocation, locate
from publisher.state.server import server_connection
from tests.conftest import Site, run_cli
from tests.mailserver import Collector, smtp_server
from tests.test_schedule import RUN_LINE, Scheduler, news, second_in, set_schedule, start, use_smtp
from tests.test_schedule import schedulers as schedulers  # the fixture: every scheduler killed at the end

LEASE = 2.0
LEADING = r"publisher\.schedule: leading \(epoch (\d+)\)"
WAITING = r"publisher\.schedule: waiting: \S+ leads \(epoch \d+\)"
PUBLISHED = RUN_LINE + r"\d+ new articles?, "


@pytest.fixture
def shared(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[sa.Engine]:
    """Every `publisher` subprocess of the test uses the PostgreSQL database, with a 2 s lease."""
    monkeypatch.setenv("PUBLISHER_DATABASE_URL", pg_url)
    monkeypatch.setenv("PUBLISHER_SCHEDULER_LEASE", str(LEASE))
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def rows(engine: sa.Engine, query: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(query))]


def fire_times(*processes: Scheduler, pattern: str = PUBLISHED) -> Counter[str]:
    """How many times each fire time's run published, over all the processes' logs."""
    return Counter(re.search(RUN_LINE, line).group(1)  # type: ignore[union-attr]
                   for process in processes for line in process.matching(pattern))


def test_two_schedulers_one_leads_and_when_it_is_killed_the_other_takes_over_and_no_run_runs_twice(
        site: Site, shared: sa.Engine, schedulers: list[Scheduler]) -> None:
    news(site)
    readers = site.subscribe(3)
    with smtp_server() as (server, port):
        use_smtp(site, port)
        set_schedule(site, "*/2 * * * * *")
        pair = [start(schedulers, site), start(schedulers, site)]
        for process in pair:
            process.wait_for(LEADING + "|" + WAITING)
        (first,) = [process for process in pair if process.matching(LEADING)]
        (other,) = [process for process in pair if process is not first]
        other.wait_for(WAITING)
        first.wait_for(RUN_LINE + r"1 new article, .* 3 sent", timeout=20)
        first.wait_for(RUN_LINE + r"0 new articles", timeout=20)
        assert not other.matching(RUN_LINE) and not other.matching("job stored|next run"), \
            "a follower runs nothing and leaves the job store alone"
        first.stop(signal.SIGKILL)
        killed = time.monotonic()
        (took,) = other.wait_for(LEADING, timeout=LEASE + 10)
        taken_after = time.monotonic() - killed
        other.wait_for(RUN_LINE + r"0 new articles", timeout=20, count=2)
        assert other.stop() == 0, other.text
    assert taken_after < LEASE + 2, f"taken over {taken_after:.1f} s after the kill (lease {LEASE} s)"
    assert re.search(LEADING, took) and int(re.search(LEADING, took).group(1)) == 2  # type: ignore[union-attr]
    assert max(fire_times(first, other).values()) == 1, "no fire time published twice"
    assert len(fire_times(other) & fire_times(first)) == 0
    assert server.copies() == dict.fromkeys(readers, 1), "each reader once"
    assert rows(shared, "SELECT count(*) FROM digests") == [(1,)]
    runs = rows(shared, "SELECT id, epoch, status FROM runs ORDER BY id")
    assert len(runs) >= 4 and {status for _, _, status in runs} == {"done"}, runs
    assert {epoch for _, epoch, _ in runs} == {1, 2}, runs
    assert "Traceback" not in first.text + other.text


def test_a_run_whose_leader_died_mid_delivery_is_finished_by_the_next_leader_without_a_second_publish(
        site: Site, shared: sa.Engine, schedulers: list[Scheduler]) -> None:
    news(site)
    readers = site.subscribe(30)
    slow = Collector()
    slow.delay = 0.1  # three seconds for the list: time to kill the leader in the middle
    with smtp_server(slow) as (server, port):
        use_smtp(site, port)
        second, _ = second_in(4)
        set_schedule(site, f"{second} * * * * *")
        first = start(schedulers, site)
        first.wait_for(LEADING)
        other = start(schedulers, site)
        other.wait_for(WAITING)
        deadline = time.monotonic() + 20
        while sum(server.copies().values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.stop(signal.SIGKILL)
        sent_before = sum(server.copies().values())
        assert 5 <= sent_before < 30, sent_before
        other.wait_for(r"run \S+ \S+ \S+: taken over from the leader of epoch 1, which stopped before "
                                  r"finishing it: its delivery is resumed", timeout=LEASE + 15)
        other.wait_for(r"run \S+ \S+ \S+: finished: \d+ sent, 0 failed, 0 bounced \(its publish was "
                                     r"done by the earlier leader\)", timeout=20)
        time.sleep(0.5)
        assert other.stop() == 0, other.text
    copies = server.copies()
    assert set(copies) == set(readers), "nobody lost"
    assert sum(copies.values()) - len(readers) <= 1, f"at most the message in flight twice: {copies}"
    assert not other.matching(PUBLISHED) and len(first.matching(RUN_LINE)) == 0, other.text
    assert rows(shared, "SELECT count(*) FROM digests") == [(1,)], "published once"
    assert rows(shared, "SELECT epoch, status FROM runs") == [(2, "done")], "taken over by epoch 2, finished"
    assert "Traceback" not in other.text


def test_two_schedulers_started_together_exactly_one_leads(
        site: Site, shared: sa.Engine, schedulers: list[Scheduler]) -> None:
    set_schedule(site, "0 7 * * 1")
    trio = [start(schedulers, site) for _ in range(3)]
    for process in trio:
        process.wait_for(LEADING + "|" + WAITING)
    time.sleep(LEASE)  # renewals keep the leader; nobody else takes over meanwhile
    leaders = [process for process in trio if process.matching(LEADING)]
    assert len(leaders) == 1, [p.text for p in trio]
    assert all(len(p.matching(WAITING)) == 1 for p in trio if p is not leaders[0]), "said once"
    assert leaders[0].stop() == 0
    deadline = time.monotonic() + 5  # a clean stop gives the lease up: one of the others leads at once
    while sum(bool(p.matching(LEADING)) for p in trio) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(bool(p.matching(LEADING)) for p in trio) == 2, [p.text for p in trio]
    for process in trio[1:] + trio[:1]:
        assert process.stop() == 0, process.text


def test_a_leader_that_loses_its_lease_stops_running_jobs_at_once_and_leads_again_later(
        site: Site, shared: sa.Engine, schedulers: list[Scheduler]) -> None:
    set_schedule(site, "* * * * * *")
    process = start(schedulers, site)
    process.wait_for(LEADING)
    process.wait_for(RUN_LINE + "0 new articles", count=2)
    with shared.begin() as conn:  # another process takes the lease (as after a pause longer than the lease)
        conn.execute(sa.text("UPDATE leases SET holder = 'thief:1:0', epoch = epoch + 1, "
                             "expires = extract(epoch from clock_timestamp()) + 3"))
    process.wait_for(r"lost the lead \(epoch 1\): the lease was taken over or expired \(renewal refused\); jobs "
                     r"stopped, waiting to lead again", timeout=LEASE)
    process.wait_for(r"waiting: thief:1:0 leads \(epoch 2\)")
    process.wait_for(r"leading \(epoch 3\)", timeout=10)
    process.wait_for(RUN_LINE + "0 new articles", count=len(process.matching(RUN_LINE)) + 2)
    assert process.stop() == 0, process.text
    lines = process.lines
    lost = next(n for n, line in enumerate(lines) if "lost the lead" in line)
    back = next(n for n, line in enumerate(lines) if re.search(r"leading \(epoch 3\)", line))
    assert sum(bool(re.search(RUN_LINE, line)) for line in lines[lost:back]) <= 1, "at most the run in progress"
    epochs = {epoch for (epoch,) in rows(shared, "SELECT DISTINCT epoch FROM runs")}
    assert epochs == {1, 3}, epochs
    assert "Traceback" not in process.text


def test_once_on_a_postgresql_state_runs_as_on_sqlite(site: Site, shared: sa.Engine) -> None:
    news(site)
    set_schedule(site, "0 7 * * 1")
    result = run_cli("schedule", "--once", cwd=site.root)
    assert result.returncode == 0, result.stderr
    assert re.search(RUN_LINE + "1 new article", result.stderr), result.stderr
    again = run_cli("schedule", "--once", cwd=site.root)
    assert again.returncode == 0 and re.search(RUN_LINE + "0 new articles, 0 files written, no digest", again.stderr)
    assert rows(shared, "SELECT count(*) FROM runs") == [(0,)], "--once is no scheduled run"


# --- the lease and the fenced runs, on their own ------------------------------------------------------

@pytest.fixture
def location(pg_url: str) -> StateLocation:
    place = locate(pg_url, Path.cwd(), {}, "test")
    with server_connection(place, write=True):
        pass  # the schema
    return place


def test_the_lease_is_taken_when_absent_or_expired_with_a_larger_epoch_each_time(location: StateLocation) -> None:
    with server_connection(location, write=False) as conn:
        assert leader.take(conn, "a", 0.5) == 1
        assert leader.take(conn, "b", 0.5) is None
        assert leader.renew(conn, "a", 1, 0.5) and not leader.renew(conn, "b", 1, 0.5)
        time.sleep(0.6)
        assert not leader.renew(conn, "a", 1, 0.5), "an expired lease is not renewed: it is lost"
        assert leader.take(conn, "b", 30) == 2
        lease = leader.current(conn)
        conn.rollback()
        assert lease is not None and (lease.holder, lease.epoch, lease.live) == ("b", 2, True)
        assert leader.take(conn, "a", 30) is None and not leader.renew(conn, "a", 1, 30)
        leader.release(conn, "b", 2)
        assert leader.take(conn, "c", 30) == 3, "released: taken at once, epoch still growing"


def test_a_run_is_claimed_once_and_every_write_is_fenced_by_the_epoch(location: StateLocation) -> None:
    run = "2026-11-30T07:00:00+00:00"
    with server_connection(location, write=False) as conn:
        assert leader.take(conn, "a", 0.3) == 1
        assert leader.claim(conn, run, "a", 1) == (Claim.NEW, None)
        assert leader.claim(conn, run, "a", 1) == (Claim.BUSY, 1)
        assert leader.mark(conn, run, 1, leader.PUBLISHED)
        time.sleep(0.4)
        assert leader.claim(conn, "2026-11-30T08:00:00+00:00", "a", 1) == (Claim.LOST, None), "lease expired"
        assert leader.take(conn, "b", 30) == 2
        assert leader.unfinished(conn, 2) == [run]
        assert leader.claim(conn, run, "b", 2) == (Claim.DELIVER, 1), "published by epoch 1: deliver only"
        assert not leader.mark(conn, run, 1, leader.DONE), "the old leader's write is fenced off"
        assert leader.mark(conn, run, 2, leader.DONE)
        assert leader.claim(conn, run, "b", 2) == (Claim.DONE, 2)
        assert leader.unfinished(conn, 2) == []
        assert leader.take(conn, "c", 30) is None


def test_a_leader_whose_lease_was_taken_over_knows_it_at_its_next_renewal(location: StateLocation) -> None:
    lost: list[str] = []
    with server_connection(location, write=False) as conn:
        epoch = leader.take(conn, "a", 1.0)
        assert epoch == 1
        term = leader.Term(location, "a", epoch, 1.0, lost.append).start()
        time.sleep(1.5)
        assert term.held() and not lost, "renewed every third of the lease"
        conn.execute(sa.text("UPDATE leases SET holder = 'thief', epoch = 9"))  # another process takes over
        conn.commit()
    deadline = time.monotonic() + 1.0
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not term.held() and lost and "renewal refused" in lost[0], lost
    term.end()


# --- the advisory run lock on PostgreSQL ----------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
import sqlalchemy as sa
from publisher import lock
from publisher.state.engine import connect, dispose_engines
from publisher.state.location import locate
where = locate(sys.argv[1], Path.cwd(), {}, "test")
with lock.acquire(where, 0, "publish"):
    with connect(where) as conn:  # the pool in use, then thrown away, as pool recycling does
        print(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar(), flush=True)
    dispose_engines()
    with connect(where) as conn:
        conn.execute(sa.text("SELECT 1"))
    dispose_engines()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_the_run_lock_on_postgresql_is_not_in_the_pool_and_survives_its_recycling(location: StateLocation) -> None:
    url = location.url.render_as_string(hide_password=False)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url, "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        pooled = int(holder.stdout.readline())
        assert holder.stdout.readline().strip() == "held"
        with server_connection(location, write=False) as conn:  # the server ends the pooled one too
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pooled})
            conn.commit()
        with pytest.raises(lock.Busy) as refused, lock.acquire(location, 0.5, "send"):
            pass
        assert f"publisher publish (pid {holder.pid} on " in str(refused.value), str(refused.value)
        assert refused.value.exit_code == 75
    finally:
        holder.kill()
        holder.wait(10)
    with lock.acquire(location, 5, "send"):  # the killed holder's connection ended: its lock went with it
        pass
