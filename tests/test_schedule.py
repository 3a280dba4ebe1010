"""`publisher schedule`: a real APScheduler in real processes, a real SQLite state, aiosmtpd for delivery.

Schedules in these tests use the optional leading seconds field ("*/2 * * * * *": every two seconds,
"S * * * * *": once a minute at second S), so that runs come within the test's time.
"""

from __future__ import annotations

import itertools
import logging
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from publisher import lock
from publisher.cron import CronSchedule, ScheduleSettings, check_cron, never_fires, next_runs, parse_cron
from tests.conftest import Site, run_cli
from tests.mailserver import Collector, smtp_server

RUN_LINE = r"publisher\.schedule: run (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \S+: "


class Scheduler:
    """`python -m publisher schedule ARGS` in a subprocess; its log lines collected as they come."""

    def __init__(self, site: Site, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "publisher", "schedule", *args], cwd=site.root,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.pid = self.process.pid
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def matching(self, pattern: str) -> list[str]:
        return [line for line in list(self.lines) if re.search(pattern, line)]

    def wait_for(self, pattern: str, timeout: float = 15, count: int = 1) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(pattern)
            if len(found) >= count:
                return found
            if self.process.poll() is not None:
                self.reader.join(2)
                if len(self.matching(pattern)) >= count:
                    return self.matching(pattern)
                break
            time.sleep(0.05)
        raise AssertionError(f"no {count} line(s) matching {pattern!r}; output:\n{self.text}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self.reader.join(5)
        return code


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    """Started schedulers, killed at the end whatever happened."""
    started: list[Scheduler] = []
    yield started
    for scheduler in started:
        if scheduler.process.poll() is None:
            scheduler.process.kill()
            scheduler.process.wait(10)


def start(schedulers: list[Scheduler], site: Site, *args: str) -> Scheduler:
    scheduler = Scheduler(site, *args)
    schedulers.append(scheduler)
    return scheduler


def add_config(site: Site, text: str) -> None:
    path = site.root / "publisher.toml"
    path.write_text(path.read_text(encoding="utf-8") + "\n" + text + "\n", encoding="utf-8")


def set_schedule(site: Site, cron: str, catch_up: str = "6h", timezone: str = "Europe/Berlin") -> None:
    """Write (or replace) the [schedule] table, kept last in the file."""
    path = site.root / "publisher.toml"
    text = path.read_text(encoding="utf-8").split("[schedule]")[0].rstrip("\n")
    path.write_text(f'{text}\n\n[schedule]\ncron = "{cron}"\ncatch_up = "{catch_up}"\ntimezone = "{timezone}"\n',
                    encoding="utf-8")


def use_smtp(site: Site, port: int) -> None:
    add_config(site, f'[email]\nfrom = "Test Site <news@example.com>"\ntransport = "smtp"\n'
                     f'[email.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n')


def journal(site: Site) -> dict[str, int]:
    with sqlite3.connect(site.state) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())


def second_in(seconds: float) -> tuple[int, datetime]:
    """A cron second field that fires `seconds` from now (once a minute), and that moment."""
    due = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    return due.second, due


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def news(site: Site, name: str = "one.md", title: str = "First news") -> None:
    site.write(name, f"---\ntitle: {title}\n---\nSomething happened.\n")


# --- real processes --------------------------------------------------------------------------------

def test_a_per_second_cron_publishes_and_delivers_on_schedule(site: Site, schedulers: list[Scheduler]) -> None:
    news(site)
    readers = site.subscribe(3)
    with smtp_server() as (server, port):
        use_smtp(site, port)
        set_schedule(site, "*/2 * * * * *")
        scheduler = start(schedulers, site)
        (first,) = scheduler.wait_for(RUN_LINE + r"1 new article, \d+ files written, digest \S+, 3 sent, 0 failed")
        later = scheduler.wait_for(RUN_LINE + r"0 new articles, 0 files written, no digest, 0 sent", count=1)
        assert scheduler.stop() == 0, scheduler.text
    assert server.copies() == dict.fromkeys(readers, 1), "each reader once, however many runs"
    for line in (first, *later):
        match = re.search(RUN_LINE, line)
        assert match and int(match.group(1)[-2:]) % 2 == 0, f"on the even seconds of the cron: {line}"
    assert scheduler.matching("SIGTERM received: stopping") and scheduler.matching("scheduler stopped")
    assert (site.feeds / "rss.xml").is_file() and journal(site) == {"sent": 3}
    assert "Traceback" not in scheduler.text


def logged_time(line: str, after: str) -> datetime:
    """The moment a scheduler logged after the words `after` ('... 22:34:58 CET (21:34:58 UTC)'), in UTC."""
    match = re.search(re.escape(after) + r" .*?\((\d\d:\d\d:\d\d) UTC\)", line)
    assert match is not None, line
    clock, now = datetime.strptime(match.group(1), "%H:%M:%S").time(), datetime.now(UTC)
    days = (now.date() + timedelta(days=d) for d in (-1, 0, 1))
    return min((datetime.combine(day, clock, UTC) for day in days), key=lambda t: abs(t - now))


def test_killed_and_restarted_it_catches_up_once_inside_catch_up_and_skips_outside(
        site: Site, schedulers: list[Scheduler]) -> None:
    """Each scheduler is killed after it logged the next run time it stored, and the test times the
    restart from that logged time: neither how fast a process starts nor where the kill lands matters."""
    news(site)
    second, _ = second_in(3)
    set_schedule(site, f"{second} * * * * *", catch_up="30s")
    first = start(schedulers, site)
    (stored,) = first.wait_for(r"job stored: .*; next run ")
    first.stop(signal.SIGKILL)
    due = logged_time(stored, "next run")
    sleep_until(due + timedelta(seconds=1.5))
    restarted = start(schedulers, site)
    (missed,) = restarted.wait_for(
        r"a run was missed while stopped due .*: it starts now, \d+ s late \(within catch_up = 30s\)")
    assert logged_time(missed, "due") == due, missed
    restarted.wait_for(RUN_LINE + "1 new article")
    time.sleep(1)
    assert restarted.stop() == 0, restarted.text
    assert len(restarted.matching(RUN_LINE)) == 1 and not first.matching(RUN_LINE), restarted.text

    news(site, "two.md", "Second news")
    second, _ = second_in(3)
    set_schedule(site, f"{second} * * * * *", catch_up="2s")
    third = start(schedulers, site)
    third.wait_for("schedule changed")
    (line,) = third.wait_for(r"publisher\.schedule: next run ")  # the last line of the start: all stored
    third.stop(signal.SIGKILL)
    due = logged_time(line, "next run")
    sleep_until(due + timedelta(seconds=4))
    late = start(schedulers, site)
    (skipped,) = late.wait_for(r"skipped the run due .*: it would start \d+ s late, more than catch_up = 2s; next run ")
    assert logged_time(skipped, "due") == due, skipped
    time.sleep(1)
    assert late.stop() == 0, late.text
    assert not late.matching(RUN_LINE) and not third.matching(RUN_LINE), late.text


def test_two_schedulers_started_together_one_runs_the_other_names_its_pid(
        site: Site, schedulers: list[Scheduler]) -> None:
    news(site)
    set_schedule(site, "* * * * * *")
    pair = [start(schedulers, site), start(schedulers, site)]
    deadline = time.monotonic() + 15
    while all(s.process.poll() is None for s in pair) and time.monotonic() < deadline:
        time.sleep(0.05)
    (loser,) = [s for s in pair if s.process.poll() is not None]
    (winner,) = [s for s in pair if s is not loser]
    assert loser.stop() == 75
    (message,) = loser.matching("^error:")
    assert f"(pid {winner.pid})" in message and "publisher schedule" in message, message
    assert "only one 'publisher schedule' may run per state database" in message
    winner.wait_for(RUN_LINE, count=2)
    assert winner.stop() == 0, winner.text
    assert not loser.matching(RUN_LINE)


def test_sigterm_during_a_send_leaves_a_consistent_journal_and_the_next_start_finishes_the_list(
        site: Site, schedulers: list[Scheduler]) -> None:
    news(site)
    readers = site.subscribe(40)
    slow = Collector()
    slow.delay = 0.05  # two seconds for the list: time to be stopped in the middle
    with smtp_server(slow) as (server, port):
        use_smtp(site, port)
        second, _ = second_in(2)
        set_schedule(site, f"{second} * * * * *")
        scheduler = start(schedulers, site)
        deadline = time.monotonic() + 20
        while sum(server.copies().values()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scheduler.stop() == 0, scheduler.text
        scheduler.wait_for(RUN_LINE + r".* sent, 0 failed.*stopped by a signal after recording the last message")
        state = journal(site)
        assert state.get("sent", 0) == sum(server.copies().values()), "every accepted message is recorded, no more"
        assert state.get("sent", 0) + state.get("queued", 0) == 40 and 0 < state["sent"] < 40, state

        again = start(schedulers, site)
        again.wait_for(r"resumed the unfinished delivery of \S+: \d+ sent, 0 failed")
        assert again.stop() == 0, again.text
    assert server.copies() == dict.fromkeys(readers, 1), "each reader exactly once"
    assert journal(site) == {"sent": 40}


def test_an_error_in_one_run_is_logged_with_its_hint_and_the_scheduler_goes_on(
        site: Site, schedulers: list[Scheduler]) -> None:
    news(site)
    set_schedule(site, "* * * * * *")
    scheduler = start(schedulers, site)
    scheduler.wait_for(RUN_LINE + "1 new article")
    config = site.root / "publisher.toml"
    good = config.read_text(encoding="utf-8")
    config.write_text(good.replace('url = "https://example.com/"', 'url = "example.com"'), encoding="utf-8")
    (error,) = scheduler.wait_for(RUN_LINE + "not done: .*'site.url' = 'example.com' must be an absolute http")
    assert " ERROR publisher.schedule: " in error
    config.write_text(good, encoding="utf-8")
    news(site, "two.md", "Second news")
    scheduler.wait_for(RUN_LINE + "1 new article, .* digest ", count=2)
    assert scheduler.process.poll() is None and scheduler.stop() == 0, scheduler.text
    assert "Traceback" not in scheduler.text


def test_a_job_store_write_that_fails_is_one_line_and_the_scheduler_goes_on(
        site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The state database held by another writer for longer than the job store waits (1 s here): the
    scheduler cannot store the next run time. It says so in one line and tries again; runs go on."""
    from publisher import schedule, schedule_service
    from publisher.config import load_settings

    monkeypatch.setattr(schedule_service, "BUSY_TIMEOUT", 1)
    monkeypatch.setattr(schedule_service, "STORE_RETRY", 1)
    monkeypatch.chdir(site.root)
    caplog.set_level(logging.INFO, logger="publisher.schedule")
    news(site)
    set_schedule(site, "* * * * * *", timezone="UTC")
    settings = load_settings(None, site.root)
    service = schedule_service.Service(settings, settings.schedule)
    schedule.STOP.clear()
    thread = threading.Thread(target=service.run_forever, daemon=True)
    thread.start()

    def run_lines() -> list[str]:
        return [r.getMessage() for r in list(caplog.records) if r.getMessage().startswith("run ")]

    def wait(check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not check():
            assert thread.is_alive() and time.monotonic() < deadline, (what, caplog.text)
            time.sleep(0.05)

    try:
        wait(lambda: len(run_lines()) >= 1, "a first run")  # (which may itself hold the state too long)
        writer = sqlite3.connect(site.state, timeout=10, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        failed = caplog.text.count("the job store could not be written")
        wait(lambda: caplog.text.count("the job store could not be written") > failed, "the job store's error")
        writer.execute("ROLLBACK")
        writer.close()
        before = len(run_lines())
        wait(lambda: len(run_lines()) >= before + 2, "two more runs")
    finally:
        service.stop(signal.SIGTERM)
        thread.join(30)
        schedule.STOP.clear()
    assert not thread.is_alive() and service.error is None, caplog.text
    errors = [r for r in caplog.records if "the job store could not be written" in r.getMessage()]
    assert errors and all(r.exc_info is None and "\n" not in r.getMessage() for r in errors), caplog.text
    assert "Traceback" not in caplog.text


def test_a_run_that_fails_with_a_bug_is_one_line_naming_where(caplog: pytest.LogCaptureFixture) -> None:
    from publisher import schedule

    caplog.set_level(logging.WARNING)  # as without -v
    try:
        {}["missing"]
    except KeyError as e:
        result = schedule._failed("2026-11-29 08:00:00 UTC", e)
    (record,) = caplog.records
    assert record.exc_info is None and "\n" not in record.getMessage(), caplog.text
    assert re.fullmatch(r"run 2026-11-29 08:00:00 UTC: failed with an unexpected error at test_schedule\.py:\d+: "
                        r"KeyError\('missing'\) \(publisher -v schedule shows the traceback\)", record.getMessage())
    assert result.exit_code == 1 and "Traceback" not in caplog.text


def test_once_runs_the_job_through_the_scheduler_and_exits(site: Site) -> None:
    news(site)
    set_schedule(site, "0 7 * * 1")
    result = run_cli("schedule", "--once", cwd=site.root)
    assert result.returncode == 0, result.stderr
    assert re.search(RUN_LINE + "1 new article", result.stderr), result.stderr
    again = run_cli("schedule", "--once", cwd=site.root)
    assert again.returncode == 0 and re.search(RUN_LINE + "0 new articles, 0 files written, no digest", again.stderr)


def test_once_while_another_run_holds_the_lock_exits_75_naming_its_pid(site: Site) -> None:
    news(site)
    set_schedule(site, "0 7 * * 1")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(site.state), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = run_cli("schedule", "--once", cwd=site.root)
    finally:
        holder.kill()
        holder.wait(10)
    assert result.returncode == 75, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if re.search(r"publisher\.schedule: run .*: not done: ", x)]
    assert f"cannot start the scheduled run: publish (pid {holder.pid}) is running on this state" in line, line
    assert "this run is skipped" in line and not (site.feeds / "rss.xml").exists()


def test_a_cron_change_in_the_config_is_picked_up_on_restart(site: Site, schedulers: list[Scheduler]) -> None:
    set_schedule(site, "0 7 * * 1")
    first = start(schedulers, site)
    (stored,) = first.wait_for(r"job stored: cron '0 7 \* \* 1' \(Europe/Berlin\); next run \S+ 07:00:00 ")
    assert first.stop() == 0, first.text
    same = start(schedulers, site)
    (kept,) = same.wait_for("next run ")
    assert same.stop() == 0 and not same.matching("changed|stored|updated")
    assert kept.split("next run ")[1] == stored.split("next run ")[1], "the stored next run time is kept"
    set_schedule(site, "30 8 * * tue", catch_up="1h")
    changed = start(schedulers, site)
    changed.wait_for(r"schedule changed from cron '0 7 \* \* 1' \(Europe/Berlin\) to cron '30 8 \* \* tue'")
    changed.wait_for(r"job updated from the config: misfire_grace_time")
    (line,) = changed.wait_for("next run ")
    assert changed.stop() == 0, changed.text
    when = datetime.strptime(line.split("next run ")[1][:19], "%Y-%m-%d %H:%M:%S")
    assert (when.weekday(), when.hour, when.minute) == (1, 8, 30), line


def test_a_manual_publish_during_a_scheduled_run_exits_or_waits(site: Site, schedulers: list[Scheduler]) -> None:
    news(site)
    site.subscribe(30)
    slow = Collector()
    slow.delay = 0.1  # three seconds of sending
    with smtp_server(slow) as (server, port):
        use_smtp(site, port)
        second, _ = second_in(2)
        set_schedule(site, f"{second} * * * * *")
        scheduler = start(schedulers, site)
        while sum(server.copies().values()) < 1:
            time.sleep(0.02)
        busy = run_cli("publish", cwd=site.root)
        assert busy.returncode == 75, busy.stdout + busy.stderr
        assert f"(pid {scheduler.pid})" in busy.stderr and "the scheduled run" in busy.stderr
        waited = run_cli("publish", "--wait", "30", cwd=site.root)
        assert waited.returncode == 0, waited.stderr
        assert "0 sent" in waited.stdout, "the scheduled run had sent everything"
        assert scheduler.stop() == 0, scheduler.text
    assert sum(server.copies().values()) == 30


# --- the lock ----------------------------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from publisher import lock
with lock.acquire(Path(sys.argv[1]), 0, "publish"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_the_run_lock_names_its_holder_and_can_be_waited_for(tmp_path: Path) -> None:
    state = tmp_path / "publisher.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state), "1.0"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(lock.Busy) as refused, lock.acquire(state, 0, "send"):
        pass
    assert refused.value.pid == holder.pid and refused.value.exit_code == 75
    assert f"cannot start send: publish (pid {holder.pid}) is running on this state" in str(refused.value)
    assert "--wait" in str(refused.value)
    started = time.monotonic()
    with lock.acquire(state, 10, "send") as path:
        assert 0.3 < time.monotonic() - started < 5 and path == tmp_path / "publisher.db.lock"
        assert lock.holder(path).what == "send"
    holder.wait(10)


def test_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    state = tmp_path / "publisher.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state), "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(10)
    with lock.acquire(state, 0, "publish"):
        pass


# --- cron and clock changes (the trigger the scheduler stores) -----------------------------------------

def runs(cron: str, after: str, count: int = 5, timezone: str = "Europe/Berlin") -> list[str]:
    plan = ScheduleSettings(cron=cron, timezone=timezone)
    return [f"{r.local:%a %Y-%m-%d %H:%M %Z} {r.utc:%H:%M}Z{' !' if r.note else ''}"
            for r in next_runs(plan, count, datetime.fromisoformat(after))]


@pytest.mark.parametrize(("after", "expected"), [
    ("2026-03-28T12:00:00+00:00", ["Sun 2026-03-29 03:00 CEST 01:00Z !", "Mon 2026-03-30 02:30 CEST 00:30Z"]),
    ("2026-10-24T12:00:00+00:00", ["Sun 2026-10-25 02:30 CEST 00:30Z !", "Mon 2026-10-26 02:30 CET 01:30Z"]),
    ("2027-03-27T12:00:00+00:00", ["Sun 2027-03-28 03:00 CEST 01:00Z !", "Mon 2027-03-29 02:30 CEST 00:30Z"]),
    ("2027-10-30T12:00:00+00:00", ["Sun 2027-10-31 02:30 CEST 00:30Z !", "Mon 2027-11-01 02:30 CET 01:30Z"]),
])
def test_a_0230_job_across_the_berlin_clock_changes(after: str, expected: list[str]) -> None:
    assert runs("30 2 * * *", after, 2) == expected


def test_the_scheduler_fires_a_0230_job_once_on_the_autumn_change_and_once_on_the_spring_change() -> None:
    trigger = CronSchedule("30 2 * * *", "Europe/Berlin")
    for day in ("2026-10-24", "2026-03-28", "2027-10-30", "2027-03-27"):
        fire = trigger.get_next_fire_time(None, datetime.fromisoformat(f"{day}T12:00:00+00:00"))
        fired = []
        while fire is not None and len(fired) < 3:
            fired.append(fire.astimezone(UTC))
            fire = trigger.get_next_fire_time(fire, fire)  # as APScheduler's _process_jobs asks
        gaps = [b - a for a, b in itertools.pairwise(fired)]
        assert all(timedelta(hours=22) < g < timedelta(hours=26) for g in gaps), (day, fired)


def test_jobs_every_hour_keep_both_passes_of_the_repeated_hour() -> None:
    assert runs("0 * * * *", "2026-10-24T22:30:00+00:00", 4) == [
        "Sun 2026-10-25 01:00 CEST 23:00Z", "Sun 2026-10-25 02:00 CEST 00:00Z !", "Sun 2026-10-25 02:00 CET 01:00Z !",
        "Sun 2026-10-25 03:00 CET 02:00Z"]


def test_next_on_the_command_line_shows_both_zones_and_says_what_the_clock_change_does(site: Site) -> None:
    set_schedule(site, "30 2 * * *")
    spring = run_cli("schedule", "--next", "3", "--clock", "2026-03-27T12:00:00Z", cwd=site.root)
    assert spring.returncode == 0, spring.stderr
    assert spring.stdout.splitlines() == [
        "next 3 runs of '30 2 * * *' in Europe/Berlin:",
        "Sat 2026-03-28 02:30:00 CET  =  2026-03-28 01:30:00 UTC",
        "Sun 2026-03-29 03:00:00 CEST  =  2026-03-29 01:00:00 UTC  "
        "(02:30 does not exist on 2026-03-29 (clocks go forward): runs at 03:00 CEST)",
        "Mon 2026-03-30 02:30:00 CEST  =  2026-03-30 00:30:00 UTC"]
    autumn = run_cli("schedule", "--next", "2", "--clock", "2027-10-30T12:00:00Z", cwd=site.root)
    assert autumn.stdout.splitlines()[1:] == [
        "Sun 2027-10-31 02:30:00 CEST  =  2027-10-31 00:30:00 UTC  "
        "(02:30 happens twice on 2027-10-31 (clocks go back): runs once, at the first (CEST))",
        "Mon 2027-11-01 02:30:00 CET  =  2027-11-01 01:30:00 UTC"]


@pytest.mark.parametrize(("cron", "weekdays"), [
    ("0 7 * * 1", ["Mon"]), ("0 7 * * 0", ["Sun"]), ("0 7 * * 7", ["Sun"]), ("0 7 * * sun", ["Sun"]),
    ("0 7 * * MON-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]), ("0 7 * * 5-7", ["Fri", "Sat", "Sun"]),
    ("0 7 * * */2", ["Sun", "Tue", "Thu", "Sat"]), ("0 7 * * 6,0", ["Sat", "Sun"]),
])
def test_weekdays_are_numbered_as_in_cron_not_as_in_apscheduler(cron: str, weekdays: list[str]) -> None:
    found = {line[:3] for line in runs(cron, "2026-11-23T00:00:00+00:00", 14)}
    assert found == set(weekdays)


def test_cron_runs_when_either_day_field_matches_and_accepts_macros_and_names() -> None:
    assert [line[:14] for line in runs("0 9 1 * fri", "2026-05-01T00:00:00+00:00", 3)] == [
        "Fri 2026-05-01", "Fri 2026-05-08", "Fri 2026-05-15"]
    assert runs("0 9 1 * fri", "2026-05-29T12:00:00+00:00", 1) == ["Mon 2026-06-01 09:00 CEST 07:00Z"]
    assert parse_cron("@weekly") == parse_cron("0 0 * * sun") == parse_cron("0 0 0 * * 7")
    assert parse_cron("0 0 1 jan *").month == frozenset({1})


@pytest.mark.parametrize(("cron", "problem"), [
    ("0 7 * *", "4 fields"), ("@dayly", "1 field, expected 5"), ("61 * * * *", "61 is outside 0-59"),
    ("0 7 * * fri-mon", "goes backwards"),
    ("0 7 * * funday", "'funday' is not a number or a name"), ("5/15 * * * *", "a step needs a range"),
    ("0 7 32 * *", "32 is outside 1-31"), ("*/0 * * * *", "step '0'"),
])
def test_a_bad_cron_is_a_clear_error(cron: str, problem: str) -> None:
    message = check_cron(cron)
    assert message is not None and problem in message, message


@pytest.mark.parametrize(("cron", "problem"), [
    ("0 7 31 2 *", "February has no 31st; pick a day of month that exists (February 1-29)"),
    ("0 7 30,31 feb *", "February has no 30th or 31st"), ("0 7 31 2 */2", "February has no 31st"),
    ("0 7 31 4,6,9,11 *", "April, June, September and November have no 31st"),
    ("0 0 0 31 2,4 *", "February and April have no 31st"),
    ("0 7 29 2 *", None), ("0 7 31 2 mon", None), ("0 7 31 1-12/2 *", None), ("0 7 22,31 2 *", None),
    ("@yearly", None), ("0 7 31 * *", None),
])
def test_a_cron_that_never_fires_is_named_and_the_trigger_agrees(cron: str, problem: str | None) -> None:
    message = check_cron(cron)
    if problem is None:
        assert message is None and never_fires(parse_cron(cron)) is None, message
    else:
        assert message is not None and message.startswith(f"never fires: {problem}"), message
    fires = CronSchedule(cron, "Europe/Berlin").get_next_fire_time(None, datetime(2026, 11, 29, tzinfo=UTC))
    assert (fires is not None) == (problem is None), "APScheduler's CronTrigger, translated, says the same"


@pytest.mark.parametrize("args", [("--next", "3"), ("--once",), ()])
def test_a_cron_that_never_fires_stops_schedule_with_one_line_and_exit_2(site: Site, args: tuple[str, ...]) -> None:
    set_schedule(site, "0 7 31 2 *")
    result = run_cli("schedule", *args, cwd=site.root)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.splitlines()
    assert line == (f"error: {site.root / 'publisher.toml'}: 'schedule.cron' = '0 7 31 2 *' never fires: February "
                    "has no 31st; pick a day of month that exists (February 1-29)"), line


def test_next_counts_runs_in_good_english(site: Site) -> None:
    set_schedule(site, "0 7 * * mon")
    one = run_cli("schedule", "--next", "1", "--clock", "2026-11-29T12:00:00Z", cwd=site.root)
    assert one.stdout.splitlines() == ["next run of '0 7 * * mon' in Europe/Berlin:",
                                       "Mon 2026-11-30 07:00:00 CET  =  2026-11-30 06:00:00 UTC"], one.stderr
    two = run_cli("schedule", "--next", "2", "--clock", "2026-11-29T12:00:00Z", cwd=site.root)
    assert two.stdout.splitlines()[0] == "next 2 runs of '0 7 * * mon' in Europe/Berlin:", two.stderr


def test_a_bad_schedule_setting_stops_with_the_key_named(site: Site) -> None:
    set_schedule(site, "0 7 * * 1", catch_up="six hours")
    result = run_cli("schedule", "--next", "1", cwd=site.root)
    assert result.returncode == 2
    assert "'schedule.catch_up' = 'six hours' must be a duration such as 90s, 30m, 6h" in result.stderr
    add_config(site, "cronn = 1")
    typo = run_cli("schedule", "--next", "1", cwd=site.root)
    assert typo.returncode == 2 and "unknown key 'schedule.cronn'; did you mean 'cron'?" in typo.stderr
