"""`publisher schedule`: APScheduler 3.x wiring. One job, persistent, one run at a time.

- The job store is the state database (`sqlite:///<paths.state>`, table `apscheduler_jobs`), so a restart
  keeps the next run time. The job is stored once under the id `publish` and the importable name
  `publisher.schedule:run_job`; on start it is added only when not stored, rescheduled when the cron or
  timezone changed, and modified when catch_up, jitter or the config path changed. Never
  `replace_existing=True`: that recomputes the next run time and loses a run missed while the process was down.
- Job defaults are explicit: `coalesce=True` (several missed runs start once), `max_instances=1`,
  `misfire_grace_time` = `schedule.catch_up` (APScheduler's default of 1 s silently drops runs).
- The trigger is `CronSchedule`: standard cron (see `parse_cron`) translated field by field to
  APScheduler's CronTrigger (whose weekdays count from Monday = 0), with cron's rules for clock changes:
  a time the spring change skips runs at the first valid time after it (03:00 for 02:30 in
  Europe/Berlin); a time the autumn change repeats runs once, unless the minute or hour field starts
  with `*` (Vixie cron's rule: such jobs keep their rhythm through the repeated hour).
- A run is `publish_and_deliver` (the code of `publisher publish`) under the run lock of lock.py. A stop
  request (SIGTERM, SIGINT) lets a run finish its current message and record it; the scheduler then
  exits, and its next start first finishes any delivery left unfinished.

Only this module and the CLI read the clock. APScheduler is imported only when a scheduler or trigger
is built, so config.py can import the settings and checks of this module cheaply.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher import lock
from publisher.errors import PublisherError, StateError

if TYPE_CHECKING:
    from publisher.config import Settings
    from publisher.deliver.send import DeliveryReport
    from publisher.deliver.send import Progress as SendProgress
    from publisher.models import PublishReport
    from publisher.pipeline import Progress

log = logging.getLogger(__name__)
JOB_ID = "publish"
JOB_FUNC = "publisher.schedule:run_job"
RESUME_FUNC = "publisher.schedule:resume_delivery"
DEFAULT_CRON = "0 7 * * 1"  # Monday 07:00
STOP = threading.Event()  # set on SIGTERM/SIGINT: a run finishes its current message, the scheduler exits


# --- settings: [schedule] ------------------------------------------------------------------------

@dataclass(frozen=True)
class ScheduleSettings:
    cron: str = DEFAULT_CRON
    timezone: str = "UTC"  # resolved: an empty schedule.timezone means site.timezone
    catch_up: str = "6h"  # how late a missed run may still start: 90s, 30m, 6h, 1d, 1h30m
    jitter: int = 0  # seconds; each run starts up to this much later, at random

    @property
    def catch_up_seconds(self) -> int:
        return parse_duration(self.catch_up)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> int:
    """'90s', '30m', '6h', '1d', '1h30m' -> seconds (at least 1)."""
    match = _DURATION.fullmatch(text.replace(" ", "").lower())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total < 1:
        raise ValueError("a duration must be at least 1s")
    return total


def check_cron(value: str) -> str | None:
    try:
        parse_cron(value)
    except ValueError as e:
        return (f"is not a cron expression: {e}; write minute hour day-of-month month day-of-week, "
                "e.g. '0 7 * * mon' (Monday 07:00)")
    return None


def check_duration(value: str) -> str | None:
    try:
        parse_duration(value)
    except ValueError:
        return "must be a duration such as 90s, 30m, 6h, 1d or 1h30m"
    return None


def check_timezone_or_empty(value: str) -> str | None:
    if not value:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not a known IANA timezone (for example Europe/Berlin), or empty for site.timezone"
    return None


def load_settings(config: Path | None, cwd: Path) -> tuple[Settings, ScheduleSettings]:
    """The settings and their [schedule] section."""
    from publisher.config import load_settings as load

    settings = load(config, cwd)
    return settings, settings.schedule


# --- cron ----------------------------------------------------------------------------------------

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron: 0 (and 7) = Sunday
APS_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # APScheduler 3: 0 = Monday
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
# name, lowest, highest, value names (the first name is worth `lowest` for days, 1 for months)
CRON_FIELDS = (("second", 0, 59, ()), ("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
               ("month", 1, 12, MONTHS), ("day of week", 0, 7, CRON_DAYS))


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the set of values of each field, and the `*` flags that matter."""

    second: frozenset[int]
    minute: frozenset[int]
    hour: frozenset[int]
    day: frozenset[int]
    month: frozenset[int]
    weekday: frozenset[int]  # cron numbering, 7 folded into 0: 0 = Sunday
    day_star: bool  # day of month starts with '*'
    weekday_star: bool
    wall_star: bool  # minute or hour starts with '*': runs in both passes of a repeated hour

    def trigger_fields(self) -> list[dict[str, str]]:
        """CronTrigger keyword arguments. When both day fields are restricted, cron runs on days matching
        either (CronTrigger needs both): then two triggers, one per day field."""
        def expr(values: frozenset[int], low: int, high: int) -> str:
            return "*" if values == frozenset(range(low, high + 1)) else ",".join(map(str, sorted(values)))

        weekday = "*" if len(self.weekday) == 7 else ",".join(
            APS_DAYS[d] for d in sorted((d - 1) % 7 for d in self.weekday))
        common = {"second": expr(self.second, 0, 59), "minute": expr(self.minute, 0, 59),
                  "hour": expr(self.hour, 0, 23), "month": expr(self.month, 1, 12)}
        day = expr(self.day, 1, 31)
        if not (self.day_star or self.weekday_star):
            return [{**common, "day": day, "day_of_week": "*"}, {**common, "day": "*", "day_of_week": weekday}]
        return [{**common, "day": day, "day_of_week": weekday}]


def _number(text: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if text.lower() in names:
        return names.index(text.lower()) + (1 if names is MONTHS else 0)
    if not text.isdigit():
        named = f" or a name ({', '.join(names)})" if names else ""
        raise ValueError(f"{text!r} is not a number{named}")
    if not low <= int(text) <= high:
        raise ValueError(f"{text} is outside {low}-{high}")
    return int(text)


def _values(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) >= 1):
            raise ValueError(f"{name}: step {step_text!r} must be a number of 1 or more")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (_number(x, low, high, names) for x in base.split("-", 1))
            if first > last:
                raise ValueError(f"{name}: the range {base!r} goes backwards; list both parts instead")
        elif slash:
            raise ValueError(f"{name}: {part!r}: a step needs a range, e.g. */15 or 0-30/15")
        else:
            first = last = _number(base, low, high, names)
        found.update(range(first, last + 1, int(step_text) if slash else 1))
    return frozenset(found)


def parse_cron(text: str) -> Cron:
    """Standard five-field cron (minute hour day-of-month month day-of-week; 0 and 7 = Sunday; names
    jan-dec and sun-sat; lists, ranges and steps; @daily and the like). Six fields: a leading seconds
    field (an extension, as in Quartz or node-cron), for tests and sub-minute schedules."""
    words = MACROS.get(text.strip().lower(), text).split()
    if len(words) not in (5, 6):
        raise ValueError(f"{len(words)} fields, expected 5 (or 6 with a leading seconds field)")
    words = words if len(words) == 6 else ["0", *words]
    second, minute, hour, day, month, weekday = (_values(w, *spec) for w, spec in zip(words, CRON_FIELDS, strict=True))
    return Cron(second, minute, hour, day, month, frozenset(d % 7 for d in weekday),
                day_star=words[3].startswith("*"), weekday_star=words[5].startswith("*"),
                wall_star=words[1].startswith("*") or words[2].startswith("*"))


def _skipped(moment: datetime) -> bool:
    """A wall time that does not exist (skipped by a spring change)."""
    back = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) != moment.replace(tzinfo=None)


def _repeated(moment: datetime) -> bool:
    """A wall time that happens twice (an autumn change)."""
    return not _skipped(moment) and moment.replace(fold=0).utcoffset() != moment.replace(fold=1).utcoffset()


def _gap_end(moment: datetime) -> datetime:
    """The first valid time after a skipped wall time: the instant the clocks jumped."""
    tz = moment.tzinfo
    low, high = sorted(int(moment.replace(fold=f).timestamp()) for f in (0, 1))
    after = datetime.fromtimestamp(high, tz).utcoffset()
    while high - low > 1:  # offset(low) is the old one, offset(high) the new one
        middle = (low + high) // 2
        low, high = (low, middle) if datetime.fromtimestamp(middle, tz).utcoffset() == after else (middle, high)
    return datetime.fromtimestamp(high, tz)


class CronSchedule:
    """The job's trigger (an APScheduler trigger by registration: see `_apscheduler`). Pickled into the
    job store as (cron, timezone, jitter) only; keep this class at publisher.schedule.CronSchedule."""

    def __init__(self, cron: str, timezone: str, jitter: int = 0) -> None:
        self._setup(cron, timezone, jitter)

    def _setup(self, cron: str, timezone: str, jitter: int) -> None:
        _apscheduler()
        from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

        self.cron, self.timezone, self.jitter = cron, timezone, jitter
        self.parsed = parse_cron(cron)
        self.tz = ZoneInfo(timezone)
        self.parts = [CronTrigger(timezone=self.tz, **fields) for fields in self.parsed.trigger_fields()]

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "cron": self.cron, "timezone": self.timezone, "jitter": self.jitter}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(state["cron"], state["timezone"], state["jitter"])

    def __str__(self) -> str:
        jitter = f", jitter {self.jitter} s" if self.jitter else ""
        return f"cron '{self.cron}' ({self.timezone}{jitter})"

    __repr__ = __str__

    def same_times(self, other: object) -> bool:
        """Fires at the same times (jitter aside)? A cron written differently may still be the same."""
        return isinstance(other, CronSchedule) and (other.parsed, other.timezone) == (self.parsed, self.timezone)

    def next_time(self, previous: datetime | None, now: datetime) -> tuple[datetime, str] | None:
        """The next fire time (without jitter) after `previous`, or from `now`; with a note when a clock
        change moves it or makes it happen once instead of twice."""
        limit = previous if previous is not None else now - timedelta(microseconds=1)
        for _ in range(10_000):
            found = [t for t in (p.get_next_fire_time(previous, now) for p in self.parts) if t is not None]
            if not found:
                return None
            raw = min(found, key=lambda t: t.astimezone(UTC))
            previous = now = raw
            day, wall = f"{raw:%Y-%m-%d}", f"{raw:%H:%M}"
            if _skipped(raw):
                fire = _gap_end(raw)
                if fire > limit:  # else: this gap's run is already done (or past)
                    return fire, f"{wall} does not exist on {day} (clocks go forward): runs at {fire:%H:%M %Z}"
            elif not _repeated(raw):
                return raw, ""
            elif self.parsed.wall_star:
                which = "second" if raw.fold else "first"
                return raw, f"{wall} happens twice on {day} (clocks go back): this is the {which}, {raw:%Z}"
            elif not raw.fold:
                return raw, f"{wall} happens twice on {day} (clocks go back): runs once, at the first ({raw:%Z})"
        return None

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        found = self.next_time(previous_fire_time, now)
        if found is None:
            return None
        return found[0] + timedelta(seconds=random.uniform(0, self.jitter)) if self.jitter else found[0]



@dataclass(frozen=True)
class NextRun:
    local: datetime  # in the schedule's timezone
    utc: datetime
    note: str  # what a clock change does to this run, if anything


def next_runs(plan: ScheduleSettings, count: int, now: datetime | None = None) -> list[NextRun]:
    """The next `count` run times after `now` (default: the clock), as the scheduler computes them
    (jitter aside)."""
    trigger = CronSchedule(plan.cron, plan.timezone)
    start = (now or _clock()).astimezone(plan.tz)
    runs: list[NextRun] = []
    previous: datetime | None = None
    while len(runs) < count and (found := trigger.next_time(previous, previous or start)):
        previous, note = found
        runs.append(NextRun(previous, previous.astimezone(UTC), note))
    return runs


# --- one run ---------------------------------------------------------------------------------------

def _clock() -> datetime:
    return datetime.now(UTC)


def publish_and_deliver(settings: Settings, clock: Callable[[], datetime], stop: Callable[[], bool], *,
                        progress: Progress | None = None,
                        send_progress: SendProgress | None = None) -> tuple[PublishReport, DeliveryReport]:
    """What `publisher publish` does: publish at clock(), then deliver. Hold the run lock around it.
    The CLI's `publish` runs the same two steps, printing between them."""
    from publisher.deliver.send import deliver_pending
    from publisher.pipeline import publish

    report = publish(settings, clock(), progress=progress)
    return report, deliver_pending(settings, clock, stop, send_progress)


@dataclass(frozen=True)
class RunResult:
    exit_code: int  # as `publisher publish` would exit: 0, 1 (bad article or failed message), 75 busy, 130 stopped
    line: str


def _carried(settings: Settings, digest_id: str | None) -> int:
    """How many articles the digest carries: the run's new articles. (PublishReport could say it.)"""
    from publisher.store import open_store

    if not digest_id:
        return 0
    with open_store(settings.paths.state, write=False) as store:
        return next((len(slugs) for i, _, slugs in store.digest_history() if i == digest_id), 0)


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _summary(stamp: str, report: PublishReport, new: int, delivery: DeliveryReport, seconds: float) -> RunResult:
    digest = f"digest {report.digest}" if report.digest else "no digest"
    line = (f"run {stamp}: {_many(new, 'new article')}, {_many(len(report.written), 'file')} written, {digest}, "
            f"{delivery.sent} sent, {delivery.failed} failed, {delivery.bounced} bounced")
    line += f", {delivery.cancelled} cancelled" if delivery.cancelled else ""
    line += f", {_many(report.skipped, 'article')} skipped with errors" if report.errors else ""
    line += f"; {seconds:.2f} s"
    if delivery.stopped:
        line += "; stopped by a signal after recording the last message: the rest is sent on the next start"
    code = 130 if delivery.stopped else 1 if report.errors or delivery.failed else 0
    log.log(logging.WARNING if code else logging.INFO, "%s", line)
    return RunResult(code, line)


def _failed(stamp: str, error: Exception) -> RunResult:
    if isinstance(error, PublisherError):
        line = f"run {stamp}: not done: {error}"
        log.error("%s", line)
        return RunResult(error.exit_code, line)
    line = f"run {stamp}: failed with an unexpected error: {error!r}"
    log.error("%s", line, exc_info=error)
    return RunResult(1, line)


def run_job(config: str, wait: float | None = None) -> RunResult:
    """The scheduled job, stored in the job store by this name (publisher.schedule:run_job) with the
    config path ('' for the built-in defaults). `wait`: seconds to wait for the run lock (default: catch_up)."""
    started, timer = _clock(), time.perf_counter()
    stamp = f"{started:%Y-%m-%d %H:%M:%S} UTC"
    try:
        settings, plan = load_settings(Path(config) if config else None, Path.cwd())
        stamp = f"{started.astimezone(plan.tz):%Y-%m-%d %H:%M:%S %Z}"
        patience = plan.catch_up_seconds if wait is None else wait
        with lock.acquire(settings.paths.state, patience, "the scheduled run", stop=STOP.is_set,
                          hint="this run is skipped; the next one goes ahead as scheduled"):
            report, delivery = publish_and_deliver(settings, _clock, STOP.is_set)
        new = _carried(settings, report.digest)
    except Exception as e:  # one run's error is logged; the scheduler goes on
        return _failed(stamp, e)
    for problem in report.problems:
        log.warning("%s: %s", problem.severity, problem)
    return _summary(stamp, report, new, delivery, time.perf_counter() - timer)


def resume_delivery(config: str) -> RunResult:
    """At start: finish a delivery that a stop (or a crash) left unfinished, as `publisher send` would."""
    started, timer = _clock(), time.perf_counter()
    stamp = f"{started:%Y-%m-%d %H:%M:%S} UTC"
    try:
        settings, plan = load_settings(Path(config) if config else None, Path.cwd())
        with lock.acquire(settings.paths.state, plan.catch_up_seconds, "the unfinished delivery", stop=STOP.is_set,
                          hint="'publisher send' or the next run finishes it"):
            from publisher.deliver.send import deliver_pending

            delivery = deliver_pending(settings, _clock, STOP.is_set)
    except Exception as e:
        return _failed(stamp, e)
    if not delivery.digests:
        return RunResult(0, "")
    line = (f"resumed the unfinished delivery of {', '.join(delivery.digests)}: {delivery.sent} sent, "
            f"{delivery.failed} failed, {delivery.bounced} bounced; {time.perf_counter() - timer:.2f} s")
    log.info("%s", line)
    return RunResult(130 if delivery.stopped else 1 if delivery.failed else 0, line)


# --- the scheduler -----------------------------------------------------------------------------------

BUSY_TIMEOUT = 300  # seconds the job store waits for the state database (a publish holds one transaction)


@functools.cache
def _apscheduler() -> Any:
    """Import APScheduler, register CronSchedule as a trigger, and return our BlockingScheduler class."""
    from apscheduler.schedulers.base import STATE_STOPPED  # type: ignore[import-untyped]
    from apscheduler.schedulers.blocking import BlockingScheduler  # type: ignore[import-untyped]
    from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]

    BaseTrigger.register(CronSchedule)

    class Scheduler(BlockingScheduler):  # type: ignore[misc]
        """A BlockingScheduler safe to shut down from another thread (a signal's). In APScheduler 3,
        shutdown() changes the state while the main loop may be submitting due jobs (then remove_job
        fails and the loop dies), and the loop looks for due jobs once more after shutdown (a job due
        then goes to the stopped executor, fails, and its next run time is advanced: a lost run). Here
        both happen under the job stores' lock, and no job is looked for once the state is stopped."""

        def _process_jobs(self) -> Any:
            with self._jobstores_lock:
                return None if self.state == STATE_STOPPED else super()._process_jobs()

        def shutdown(self, wait: bool = True) -> None:
            with self._jobstores_lock:
                super().shutdown(wait)

    return Scheduler


def _human(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    minutes, hours = seconds // 60, seconds // 3600
    return f"{minutes} min" if hours < 2 else f"{hours} h {minutes % 60} min"


class Service:
    """The `publisher schedule` process: `run_forever()` or `run_once()`; `stop()` is safe in a signal handler."""

    def __init__(self, settings: Settings, plan: ScheduleSettings) -> None:
        self.settings, self.plan = settings, plan
        self.config = str(settings.source) if settings.source else ""
        self.trigger = CronSchedule(plan.cron, plan.timezone, plan.jitter)
        self.scheduler: Any = None
        self.error: Exception | None = None
        self.results: list[RunResult] = []
        self._guard = threading.Lock()
        self._down = False

    def _when(self, moment: datetime) -> str:
        return f"{moment.astimezone(self.plan.tz):%Y-%m-%d %H:%M:%S %Z} ({moment.astimezone(UTC):%H:%M:%S} UTC)"

    def _build(self, persistent: bool) -> Any:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED  # type: ignore[import-untyped]
        from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
        from apscheduler.jobstores.memory import MemoryJobStore  # type: ignore[import-untyped]
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]

        default = SQLAlchemyJobStore(url=f"sqlite:///{self.settings.paths.state}", tablename="apscheduler_jobs",
                                     engine_options={"connect_args": {"timeout": BUSY_TIMEOUT}}) \
            if persistent else MemoryJobStore()
        scheduler = _apscheduler()(
            timezone=self.plan.tz, jobstores={"default": default, "memory": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": self.plan.catch_up_seconds})
        scheduler.add_listener(self._not_run, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        return scheduler

    def _start(self) -> None:
        """Run the scheduler until it is shut down; then raise what went wrong while starting, if anything."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self.scheduler.start()
        except SQLAlchemyError as e:
            self.error = e
        if isinstance(self.error, SQLAlchemyError):
            raise StateError(f"{self.settings.paths.state}: the scheduler's job store cannot be used: {self.error}",
                             "check the file, or move it away to start a new state") from self.error
        if self.error is not None:
            raise self.error

    def run_forever(self) -> None:
        """The foreground scheduler. A second one on the same state raises lock.Busy at once."""
        from apscheduler.events import EVENT_SCHEDULER_STARTED

        with lock.acquire_scheduler(self.settings.paths.state):
            self.scheduler = self._build(persistent=True)
            self.scheduler.add_listener(self._started, EVENT_SCHEDULER_STARTED)
            self.scheduler.add_job(RESUME_FUNC, "date", id="resume", jobstore="memory", args=[self.config],
                                   name="finish an unfinished delivery")
            log.info("scheduler started (pid %d) for %s: %s, catch_up %s", os.getpid(), self.settings.paths.state,
                     self.trigger, self.plan.catch_up)
            self._start()
        log.info("scheduler stopped")

    def run_once(self) -> RunResult:
        """One run now, through the same scheduler, executor, job function and lock (wait 0)."""
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED

        self.scheduler = self._build(persistent=False)
        self.scheduler.add_listener(self._once_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self.scheduler.add_listener(lambda _event: STOP.is_set() and self._shutdown(False), EVENT_SCHEDULER_STARTED)
        self.scheduler.add_job(JOB_FUNC, "date", id="once", args=[self.config], kwargs={"wait": 0},
                               name="publisher publish (once)")
        self._start()
        return self.results[0] if self.results else RunResult(130, "stopped before the run started")

    def stop(self, signum: int) -> None:
        """From a signal handler: a run in progress finishes its current message; then the scheduler exits."""
        if not STOP.is_set():
            STOP.set()
            log.warning("%s received: stopping (a run in progress finishes its current message first)",
                        signal.Signals(signum).name)
        if self.scheduler is not None and self.scheduler.running:
            threading.Thread(target=self._shutdown, name="publisher-stop", daemon=True).start()

    def _shutdown(self, wait: bool = True) -> bool:
        from apscheduler.schedulers import SchedulerNotRunningError  # type: ignore[import-untyped]

        with self._guard:
            if self._down:
                return False
            self._down = True
        with contextlib.suppress(SchedulerNotRunningError):
            self.scheduler.shutdown(wait=wait)
        return True

    def _started(self, _event: Any) -> None:
        """On start, before the first look for due jobs: make the stored job match the config."""
        try:
            self._reconcile()
        except Exception as e:  # noted here; raised by _start once the scheduler is down
            self.error = e
            self._shutdown(False)
            return
        if STOP.is_set():
            self._shutdown(False)

    def _reconcile(self) -> None:
        scheduler = self.scheduler
        options: dict[str, Any] = {"args": (self.config,), "misfire_grace_time": self.plan.catch_up_seconds,
                                   "coalesce": True, "max_instances": 1, "name": "publisher publish"}
        try:
            job = scheduler.get_job(JOB_ID, "default")
        except Exception as e:  # stored by an incompatible version: store it again
            log.warning("the stored job could not be read (%r): it is stored again from the config", e)
            scheduler.remove_job(JOB_ID, "default")
            job = None
        if job is None:
            job = scheduler.add_job(JOB_FUNC, self.trigger, id=JOB_ID, jobstore="default", **options)
            log.info("job stored: %s; next run %s", self.trigger, self._when(job.next_run_time))
            return
        changes = {key: value for key, value in options.items() if getattr(job, key) != value}
        if job.func_ref != JOB_FUNC:
            changes["func"] = JOB_FUNC
        if not self.trigger.same_times(job.trigger):
            log.info("schedule changed from %s to %s: rescheduled", job.trigger, self.trigger)
            job = scheduler.reschedule_job(JOB_ID, "default", trigger=self.trigger)
        elif str(job.trigger) != str(self.trigger):
            changes["trigger"] = self.trigger  # jitter only: the next run time stays
        else:
            self._missed_while_down(job.next_run_time)
        if changes:
            job = scheduler.modify_job(JOB_ID, "default", **changes)
            log.info("job updated from the config: %s", ", ".join(sorted(changes)))
        log.info("next run %s", self._when(job.next_run_time))

    def _missed_while_down(self, due: datetime | None) -> None:
        now = _clock()
        if due is None or due > now:
            return
        missed, last = 1, due
        while missed < 100_000 and (found := self.trigger.next_time(last, last)) and found[0] <= now:
            missed, last = missed + 1, found[0]
        runs = f"{missed} runs were missed while stopped, the last" if missed > 1 else "a run was missed while stopped"
        late = (now - last).total_seconds()
        if late <= self.plan.catch_up_seconds:
            log.info("%s due %s: it starts now, %s late (within catch_up = %s)", runs, self._when(last), _human(late),
                     self.plan.catch_up)

    def _not_run(self, event: Any) -> None:
        """EVENT_JOB_MISSED and EVENT_JOB_MAX_INSTANCES, in plain words (APScheduler's own line is terse)."""
        now = _clock()
        if hasattr(event, "scheduled_run_times"):
            log.warning("the run due %s was not started: the previous run is still going",
                        self._when(event.scheduled_run_times[-1]))
            return
        due = event.scheduled_run_time
        following = self.trigger.next_time(now, now)
        log.warning("skipped the run due %s: it would start %s late, more than catch_up = %s; next run %s",
                    self._when(due), _human((now - due).total_seconds()), self.plan.catch_up,
                    self._when(following[0]) if following else "never")

    def _once_done(self, event: Any) -> None:
        retval = getattr(event, "retval", None)
        self.results.append(retval if isinstance(retval, RunResult) else RunResult(1, "the run did not complete"))
        threading.Thread(target=self._shutdown, name="publisher-once", daemon=True).start()
