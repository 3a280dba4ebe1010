"""`publisher schedule` on both engines: every test runs once on an SQLite file and once on a PostgreSQL database of
its own (`state_site`, tests/conftest.py), with real `python -m publisher schedule` processes (the helpers of
tests/test_schedule.py: per-second crons, log lines collected as they come) and aiosmtpd for delivery. On
PostgreSQL the scheduler's lease is 2 s instead of 30 s (PUBLISHER_SCHEDULER_LEASE), so that a killed
scheduler's lease ends within the test.

`--once` publishes and delivers; a second scheduler is refused on SQLite (one machine) and waits as a follower
on PostgreSQL; the job store keeps the next run time in the state database across a restart; a run missed while
stopped starts at once within catch_up."""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import StateSite, run_cli
from tests.mailserver import smtp_server
from tests.test_schedule import (
    RUN_LINE,
    Scheduler,
    logged_time,
    news,
    second_in,
    set_schedule,
    sleep_until,
    start,
    use_smtp,
)
from tests.test_schedule import schedulers as schedulers  # the fixture: every scheduler killed at the end

LEASE = 2.0
LEADING = r"publisher\.schedule: leading \(epoch (\d+)\)"
WAITING = r"publisher\.schedule: waiting: \S+ leads \(epoch \d+\)"
NEXT_RUN = r"publisher\.schedule: (job stored: .*; )?next run "


@pytest.fixture(autouse=True)
def short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_SCHEDULER_LEASE", str(LEASE))


def next_run(line: str) -> datetime:
    """The next run time a scheduler logged ('... next run 2026-11-30 07:00:00 CET (06:00:00 UTC)'), in Berlin."""
    return datetime.strptime(line.split("next run ")[1][:19], "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=ZoneInfo("Europe/Berlin"))


def test_once_publishes_and_delivers_and_a_second_once_has_nothing_new(state_site: StateSite) -> None:
    site = state_site
    news(site)
    readers = site.subscribe(3)
    with smtp_server() as (server, port):
        use_smtp(site, port)
        set_schedule(site, "0 7 * * 1")
        result = run_cli("schedule", "--once", cwd=site.root)
        assert result.returncode == 0, result.stderr
        assert re.search(RUN_LINE + r"1 new article, \d+ files written, digest \S+, 3 sent, 0 failed", result.stderr), \
            result.stderr
        again = run_cli("schedule", "--once", cwd=site.root)
        assert again.returncode == 0, again.stderr
        assert re.search(RUN_LINE + "0 new articles, 0 files written, no digest, 0 sent", again.stderr), again.stderr
    assert server.copies() == dict.fromkeys(readers, 1)
    assert site.query("SELECT status, count(*) FROM deliveries GROUP BY status") == [("sent", 3)]
    assert (site.feeds / "rss.xml").is_file() and "Traceback" not in result.stderr + again.stderr


def test_a_second_scheduler_is_refused_on_sqlite_and_follows_on_postgresql(
        state_site: StateSite, schedulers: list[Scheduler]) -> None:
    site = state_site
    set_schedule(site, "0 7 * * 1")
    first = start(schedulers, site)
    (stored,) = first.wait_for(NEXT_RUN)
    second = start(schedulers, site)
    if not site.on_server:  # SQLite is one machine: one scheduler, the other told who runs
        assert second.process.wait(timeout=15) == 75, second.text
        second.reader.join(5)
        (message,) = second.matching("^error:")
        assert f"(pid {first.pid})" in message and "only one 'publisher schedule' may run" in message, message
        assert first.process.poll() is None and first.stop() == 0, first.text
        return
    second.wait_for(WAITING)
    time.sleep(LEASE)  # renewals keep the leader; the follower waits and touches nothing
    assert second.process.poll() is None and not second.matching(LEADING + "|" + NEXT_RUN), second.text
    assert first.stop() == 0, first.text  # a clean stop gives the lease up: the follower leads at once
    (took,) = second.wait_for(LEADING, timeout=5)
    assert re.search(LEADING, took).group(1) == "2", took  # type: ignore[union-attr]
    (kept,) = second.wait_for(NEXT_RUN)
    assert next_run(kept) == next_run(stored), "the new leader reads the same job store"
    assert not second.matching("job stored"), second.text
    assert second.stop() == 0, second.text
    assert "Traceback" not in first.text + second.text


def test_the_next_run_time_is_kept_in_the_state_database_across_a_restart(
        state_site: StateSite, schedulers: list[Scheduler]) -> None:
    site = state_site
    set_schedule(site, "0 7 * * 1")
    first = start(schedulers, site)
    (stored,) = first.wait_for(r"job stored: cron '0 7 \* \* 1' \(Europe/Berlin\); next run \S+ 07:00:00 ")
    assert first.stop() == 0, first.text
    ((job, when),) = site.query("SELECT id, next_run_time FROM apscheduler_jobs")
    assert job == "publish" and datetime.fromtimestamp(when, ZoneInfo("Europe/Berlin")) == next_run(stored)
    again = start(schedulers, site)
    (kept,) = again.wait_for(NEXT_RUN)
    assert again.stop() == 0, again.text
    assert next_run(kept) == next_run(stored) and not again.matching("stored|changed|updated"), again.text
    assert site.query("SELECT next_run_time FROM apscheduler_jobs") == [(when,)]
    if site.on_server:
        assert not list(site.root.glob("*.db*")), "no state file beside a PostgreSQL state"


def test_a_run_missed_while_stopped_starts_at_once_within_catch_up(
        state_site: StateSite, schedulers: list[Scheduler]) -> None:
    site = state_site
    news(site)
    second, _ = second_in(3)
    set_schedule(site, f"{second} * * * * *", catch_up="30s")
    first = start(schedulers, site)
    (stored,) = first.wait_for(r"job stored: .*; next run ")
    first.stop(signal.SIGKILL)  # on PostgreSQL its lease stays until it ends (2 s here)
    due = logged_time(stored, "next run")
    sleep_until(due + timedelta(seconds=1.5))
    restarted = start(schedulers, site)
    (missed,) = restarted.wait_for(
        r"a run was missed while stopped due .*: it starts now, \d+ s late \(within catch_up = 30s\)",
        timeout=15 + LEASE)
    assert logged_time(missed, "due") == due, missed
    restarted.wait_for(RUN_LINE + "1 new article")
    time.sleep(0.5)
    assert restarted.stop() == 0, restarted.text
    assert len(restarted.matching(RUN_LINE)) == 1 and not first.matching(RUN_LINE), restarted.text
    assert site.query("SELECT count(*) FROM digests") == [(1,)], "published once"
    assert "Traceback" not in restarted.text
