"""Several senders on one PostgreSQL state: `publisher send --worker` in real subprocesses, a real throwaway
PostgreSQL server (tests/pgserver.py), aiosmtpd on 127.0.0.1. Each recipient gets the digest once; a worker
killed with SIGKILL causes at most one duplicate (the message in flight); a worker stalled past its lease
marks nothing it no longer holds; a server restarted mid-send is waited for; SQLite refuses workers."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher.deliver.journal import Journal
from publisher.deliver.subscribers import Subscribers
from publisher.deliver.worker import SQLITE_WORKERS, WorkerRow, list_workers
from publisher.render.digest import UNSUBSCRIBE
from publisher.state.location import locate
from publisher.state.schema import deliveries
from publisher.store import open_store
from tests.conftest import SITE_TOML, Site, run_cli
from tests.mailserver import Collector, smtp_server
from tests.pgserver import PgServer

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
DIGEST = "2026-11-25"


def _seed(url: str, root: Path, readers: int) -> list[str]:
    """`readers` active subscribers and one digest queued for all of them, through the library; addresses."""
    addresses = [f"reader{n:05}@example.org" for n in range(readers)]
    csv = "email,name\n" + "".join(f"{a},Reader {n}\n" for n, a in enumerate(addresses))
    with open_store(locate(url, root, {}, "test")) as store:
        assert Subscribers(store.conn).import_stream(io.StringIO(csv, newline=""), NOW).added == readers
        store.record_digest(DIGEST, NOW, [], "News", f'<p>News <a href="{UNSUBSCRIBE}">leave</a></p>',
                            f"News\nLeave: {UNSUBSCRIBE}\n")
        assert Journal(store).enqueue(DIGEST, NOW) == readers
    return addresses


def _site(root: Path, port: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "publisher.toml").write_text(
        SITE_TOML + f'\n[email]\nfrom = "Test Site <news@example.com>"\ntransport = "smtp"\n'
                    f'[email.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 10\n',
        encoding="utf-8")
    return root


def _worker(root: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PUBLISHER_DATABASE_URL": url}
    return subprocess.Popen([sys.executable, "-m", "publisher", "send", "--worker", *extra], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _journal(url: str, root: Path) -> tuple[dict[str, int], list[WorkerRow]]:
    with open_store(locate(url, root, {}, "test"), write=False) as store:
        ((_, counts),) = Journal(store).status()
        return counts, list_workers(store.conn)


def _wait_for(predicate: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


@pytest.fixture
def mail() -> Iterator[tuple[Collector, int]]:
    with smtp_server(Collector()) as (collector, port):
        yield collector, port


def test_three_workers_send_2000_messages_each_recipient_exactly_once(
        pg_url: str, tmp_path: Path, mail: tuple[Collector, int]) -> None:
    server, port = mail
    root = _site(tmp_path / "site", port)
    readers = _seed(pg_url, root, 2000)
    server.delay = 0.001  # the three overlap
    workers = [_worker(root, pg_url) for _ in range(3)]
    results = [_finish(w) for w in workers]
    for code, out, err in results:
        assert code == 0 and "Traceback" not in err, (code, out, err)
    assert server.copies() == dict.fromkeys(readers, 1), "each recipient exactly once"
    counts, senders = _journal(pg_url, root)
    assert (counts["sent"], counts["queued"], counts["failed"]) == (2000, 0, 0)
    assert len(senders) == 3 and {w.state for w in senders} == {"finished"}
    assert sum(w.sent for w in senders) == 2000 and sum(w.claimed for w in senders) == 2000
    assert sum(1 for w in senders if w.sent) >= 2, [(w.id, w.sent) for w in senders]
    sent_by = [int(out.split(" sent")[0].rsplit(" ", 1)[-1]) for _, out, _ in results]
    assert sorted(sent_by) == sorted(w.sent for w in senders)

    env = {**os.environ, "PUBLISHER_DATABASE_URL": pg_url}
    status = subprocess.run([sys.executable, "-m", "publisher", "send", "--status"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert f"{DIGEST}: 0 queued, 2000 sent, 0 failed" in status.stdout
    lines = sorted(line for line in status.stdout.splitlines() if line.startswith("worker "))
    expected = sorted(f"worker {w.id}: finished, {w.claimed} claimed, {w.sent} sent, 0 failed, last seen "
                      for w in senders)
    assert len(lines) == 3, status.stdout
    assert all(line.startswith(e) and line.endswith(" ago") for line, e in zip(lines, expected, strict=True)), lines


def test_a_worker_killed_at_random_points_loses_nothing_and_duplicates_at_most_one_per_kill(
        pg_url: str, tmp_path: Path, mail: tuple[Collector, int]) -> None:
    server, port = mail
    root = _site(tmp_path / "site", port)
    readers = _seed(pg_url, root, 600)
    server.delay = 0.004  # three workers: about a second of sending each, time to be killed
    rng = random.Random(20261125)
    lease = ("--lease", "1.5")  # a dead worker's rows come back quickly
    running = [_worker(root, pg_url, *lease) for _ in range(3)]
    kills = 0
    while kills < 5:
        time.sleep(rng.uniform(0.3, 1.2))
        alive = [w for w in running if w.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        kills += 1
        running.remove(victim)
        running.append(_worker(root, pg_url, *lease))
    for code, out, err in (_finish(w) for w in running):
        assert code == 0 and "Traceback" not in err, (code, out, err)
    counts, _ = _journal(pg_url, root)
    assert counts["sent"] == 600 and counts["queued"] == counts["failed"] == 0, counts
    copies = server.copies()
    assert set(copies) == set(readers), "nobody is lost"
    extra = sum(copies.values()) - len(readers)
    assert kills >= 3 and extra <= kills, (kills, extra)


def test_a_stalled_worker_whose_lease_ran_out_marks_nothing_it_no_longer_holds(
        pg_url: str, tmp_path: Path, mail: tuple[Collector, int]) -> None:
    server, port = mail
    root = _site(tmp_path / "site", port)
    readers = _seed(pg_url, root, 300)
    server.delay = 0.01
    stale = _worker(root, pg_url, "--lease", "1")
    _wait_for(lambda: sum(server.copies().values()) >= 20)
    stale.send_signal(signal.SIGSTOP)  # alive, holding a batch, silent
    try:
        other = _worker(root, pg_url, "--lease", "1")
        code, out, err = _finish(other)  # waits for the stale lease to run out, then takes its rows
        assert code == 0 and "Traceback" not in err, (code, out, err)
        counts, _ = _journal(pg_url, root)
        assert counts["sent"] == 300, "the other worker finished the list, the stale worker's rows included"
    finally:
        stale.send_signal(signal.SIGCONT)
    code, out, err = _finish(stale)
    assert code == 0 and "Traceback" not in err, (code, out, err)
    assert "lease ran out" in err and "another worker took it over" in err, err
    counts, senders = _journal(pg_url, root)
    assert counts["sent"] == 300
    assert sum(w.sent for w in senders) == 300, "no row counted as sent by two workers"
    copies = server.copies()
    assert set(copies) == set(readers) and sum(copies.values()) - 300 <= 1, "one duplicate at most: in flight"
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            marked = dict(conn.execute(sa.select(deliveries.c.worker, sa.func.count())
                                       .group_by(deliveries.c.worker)).all())
    finally:
        engine.dispose()
    assert marked == {w.id: w.sent for w in senders if w.sent}, "each row bears the worker that marked it"


def test_postgresql_restarted_mid_send_the_workers_wait_and_resume(
        pg_server: PgServer, pg_url: str, tmp_path: Path, mail: tuple[Collector, int]) -> None:
    server, port = mail
    root = _site(tmp_path / "site", port)
    readers = _seed(pg_url, root, 900)
    server.delay = 0.005
    workers = [_worker(root, pg_url) for _ in range(3)]
    _wait_for(lambda: sum(server.copies().values()) >= 150)
    restart = threading.Thread(target=pg_server.restart)
    restart.start()
    restart.join(timeout=60)
    assert sum(server.copies().values()) < 900, "the server restarted while the workers were sending"
    results = [_finish(w, timeout=120) for w in workers]
    for code, out, err in results:
        assert code == 0 and "Traceback" not in err, (code, out, err)
    assert any("state database unreachable" in err for _, _, err in results), "the restart was seen"
    assert server.copies() == dict.fromkeys(readers, 1), "nothing lost, nothing twice"
    counts, senders = _journal(pg_url, root)
    assert counts["sent"] == 900 and sum(w.sent for w in senders) == 900


def test_worker_on_sqlite_is_refused_with_one_line(site: Site) -> None:
    result = run_cli("send", "--worker", cwd=site.root)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {SQLITE_WORKERS}; or run one 'publisher send' without --worker"]
    assert not site.state.exists(), "refused before the state is touched"
    follow = run_cli("send", "--follow", cwd=site.root)
    assert follow.returncode == 2 and "--follow goes with --worker" in follow.stderr


def test_follow_takes_a_new_digest_and_a_bounce_and_a_retry_go_through_the_workers(
        pg_url: str, tmp_path: Path, mail: tuple[Collector, int]) -> None:
    server, port = mail
    root = _site(tmp_path / "site", port)
    readers = _seed(pg_url, root, 6)
    server.replies = {readers[1]: "550 5.1.1 No such user", readers[2]: "451 4.7.1 Greylisted"}
    server.times = {readers[1]: 99, readers[2]: 1}  # refused for good; refused once, then taken
    follower = _worker(root, pg_url, "--follow")
    _wait_for(lambda: sum(server.copies().values()) == 5)
    with open_store(locate(pg_url, root, {}, "test")) as store:
        store.record_digest("2026-11-26", NOW, [], "More", f'<p>More <a href="{UNSUBSCRIBE}">leave</a></p>',
                            f"More\nLeave: {UNSUBSCRIBE}\n")
        assert Journal(store).enqueue("2026-11-26", NOW) == 6  # one bounce of max_bounces 3: still active
    settled = {"2026-11-25": (5, 1), "2026-11-26": (5, 1)}  # every copy and bounce recorded: the worker idles
    _wait_for(lambda: sum(server.copies().values()) == 10 and _journal_all(pg_url, root)[0] == settled)
    assert follower.poll() is None, "a --follow worker keeps waiting"
    follower.send_signal(signal.SIGTERM)
    code, out, err = _finish(follower)
    assert code == 0 and "Traceback" not in err, (code, out, err)
    assert "10 sent, 0 failed, 2 bounced" in out, out
    assert server.copies() == {r: 2 for r in readers if r != readers[1]}
    counts, (worker,) = _journal_all(pg_url, root)
    assert counts == {"2026-11-25": (5, 1), "2026-11-26": (5, 1)}
    assert (worker.state, worker.sent, worker.failed) == ("finished", 10, 2)
    assert server.refused == {readers[1]: 2, readers[2]: 1}
    with open_store(locate(pg_url, root, {}, "test"), write=False) as store:
        bounced = Subscribers(store.conn).get(readers[1])
    assert bounced is not None and (bounced.status, bounced.bounces) == ("active", 2), "each bounce counted once"


def _journal_all(url: str, root: Path) -> tuple[dict[str, tuple[int, int]], list[WorkerRow]]:
    """digest -> (sent, bounced), and the workers."""
    with open_store(locate(url, root, {}, "test"), write=False) as store:
        rows = {d: (c["sent"], c["bounced"]) for d, c in Journal(store).status()}
        return rows, list_workers(store.conn)


def test_email_rate_holds_for_two_workers_together(pg_url: str, tmp_path: Path, mail: tuple[Collector, int]) -> None:
    server, port = mail
    root = _site(tmp_path / "site", port)
    config = root / "publisher.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('transport = "smtp"\n',
                                                                 'transport = "smtp"\nrate = 40\n'), encoding="utf-8")
    readers = _seed(pg_url, root, 120)
    workers = [_worker(root, pg_url) for _ in range(2)]
    _wait_for(lambda: len(server.copies()) >= 1)
    started = time.monotonic()
    for code, out, err in (_finish(w) for w in workers):
        assert code == 0 and "Traceback" not in err, (code, out, err)
    took = time.monotonic() - started
    assert server.copies() == dict.fromkeys(readers, 1)
    assert took >= (120 - 2 * 40) / 40 * 0.9, f"120 messages at 40/s for both workers took {took:.2f} s"


def _show(conn: sa.Connection) -> tuple[str, int]:
    row = conn.execute(sa.text("SELECT current_setting('synchronous_commit'), pg_backend_pid()")).one()
    return str(row[0]), int(row[1])


def test_a_sender_commits_without_waiting_for_the_disk_and_gives_its_connection_back_as_it_was(
        pg_url: str, tmp_path: Path) -> None:
    from publisher.deliver.worker import Patient
    from publisher.state.engine import connect

    with sa.create_engine(pg_url).connect() as admin:  # the server's own setting for this database: on
        admin.execute(sa.text(f'ALTER DATABASE "{sa.make_url(pg_url).database}" SET synchronous_commit = on'))
        admin.commit()
    location = locate(pg_url, tmp_path, {}, "test")
    with open_store(location) as store:
        db = Patient(store, location)
        setting, pid = _show(store.conn)
        assert setting == "on"
        db.autocommit()
        assert _show(store.conn) == ("off", pid)
        db(lambda: store.conn.execute(sa.text("SELECT 1")))
        assert _show(store.conn) == ("off", pid)
        db.strict()
        assert _show(store.conn) == ("on", pid)
    with connect(location) as conn:  # the same pooled connection, as the server sets it
        assert _show(conn) == ("on", pid)


def test_queueing_a_digest_tells_the_planner_how_many_rows_it_has(pg_url: str, tmp_path: Path) -> None:
    """Without fresh statistics every claim sorted all the digest's pending rows (10 ms a claim at 20,000)."""
    _seed(pg_url, tmp_path, 300)
    with sa.create_engine(pg_url).connect() as conn:
        rows = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE relname = 'deliveries'")).scalar_one()
    assert rows == 300  # never analyzed: -1
