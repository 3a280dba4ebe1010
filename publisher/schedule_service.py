"""`publisher schedule`: APScheduler 3.x wiring. One job, persistent, one run at a time.

- The job store is the state database (`sqlite:///<paths.state>` or the server's URL, table
  `apscheduler_jobs`), so a restart keeps the next run time. The job is stored once under the id `publish`
  and the importable name `publisher.schedule:run_job`; on start it is added only when not stored,
  rescheduled when the cron or timezone changed, and modified when catch_up, jitter or the config path
  changed. Never `replace_existing=True`: that recomputes the next run time and loses a run missed while
  the process was down.
- Job defaults are explicit: `coalesce=True` (several missed runs start once), `max_instances=1`,
  `misfire_grace_time` = `schedule.catch_up` (APScheduler's default of 1 s silently drops runs).
- The trigger is `publisher.cron.CronSchedule`: standard cron translated field by field to
  APScheduler's CronTrigger (whose weekdays count from Monday = 0), with cron's rules for clock changes:
  a time the spring change skips runs at the first valid time after it (03:00 for 02:30 in
  Europe/Berlin); a time the autumn change repeats runs once, unless the minute or hour field starts
  with `*` (Vixie cron's rule: such jobs keep their rhythm through the repeated hour).
- One scheduler per SQLite state (a file lock, held for life). On a database server any number may run:
  the one holding the `scheduler` lease (publisher.state.leader) starts APScheduler and runs the jobs;
  the others wait, not touching the job store, and one takes over when the lease ends (a dead leader's
  within the lease time, a stopped one's at once). A leader that loses its lease shuts its scheduler
  down at once (a run in progress stops after its current message) and waits again.

Its lines are logged as `publisher.schedule`, the job's too. APScheduler is imported only when a scheduler
or trigger is built.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from publisher import lock
from publisher.cron import CronSchedule, ScheduleSettings
from publisher.errors import StateError
from publisher.schedule import JOB_FUNC, JOB_ID, RESUME_FUNC, STOP, Leading, RunResult, run_id, utc_now

if TYPE_CHECKING:
    from publisher.config import Settings

log = logging.getLogger("publisher.schedule")  # one name for every line of the scheduler
LEASE = 30.0  # seconds a leader's lease lasts unrenewed (renewed every third of it)

BUSY_TIMEOUT = 300  # seconds the job store waits for the state database (a publish holds one transaction)
STORE_RETRY = 10  # seconds before the scheduler tries a job store that failed again


def _with_due(job: Any, due: datetime) -> Any:
    """A copy of the stored job whose call also gets its fire time (`due=`, ISO UTC): APScheduler 3 passes
    the job no fire time, and a leader claims a run by it."""
    from apscheduler.job import Job  # type: ignore[import-untyped]

    copy = Job.__new__(Job)
    copy.__setstate__(job.__getstate__())
    copy._jobstore_alias, copy._scheduler = job._jobstore_alias, job._scheduler
    copy.kwargs = {**job.kwargs, "due": run_id(due)}
    return copy


@functools.cache
def _executor() -> Any:
    """A one-thread executor that gives the publish job its fire time (see `_with_due`)."""
    from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]

    class Executor(ThreadPoolExecutor):  # type: ignore[misc]
        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
            if job.id == JOB_ID and run_times:
                job = _with_due(job, run_times[-1])
            super()._do_submit_job(job, run_times)

    return Executor


@functools.cache
def _apscheduler() -> Any:
    """Import APScheduler, register CronSchedule as a trigger, and return our BlockingScheduler class."""
    from apscheduler.schedulers.base import STATE_STOPPED  # type: ignore[import-untyped]
    from apscheduler.schedulers.blocking import BlockingScheduler  # type: ignore[import-untyped]
    from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]

    BaseTrigger.register(CronSchedule)

    class Scheduler(BlockingScheduler):  # type: ignore[misc]
        """A BlockingScheduler safe to shut down from another thread (a stop signal's). In APScheduler 3,
        shutdown() changes the state while the main loop may be submitting due jobs (then remove_job
        fails and the loop dies), and the loop looks for due jobs once more after shutdown (a job due
        then goes to the stopped executor, fails, and its next run time is advanced: a lost run). Here
        both happen under the job stores' lock, and no job is looked for once the state is stopped.
        APScheduler retries a job store it cannot read, but a failed write (the next run time, while a
        publish holds the state database longer than BUSY_TIMEOUT) ended its main loop: here it is one
        line and a retry. The run already submitted may then run once more: publish is idempotent."""

        def _process_jobs(self) -> Any:
            from sqlalchemy.exc import SQLAlchemyError

            with self._jobstores_lock:
                if self.state == STATE_STOPPED:
                    return None
                try:
                    return super()._process_jobs()
                except SQLAlchemyError as e:  # storing a next run time failed (busy or full): try again soon
                    log.warning("the job store could not be written (%s): trying again in %g s",
                                str(e).splitlines()[0], self.jobstore_retry_interval)
                    return self.jobstore_retry_interval

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
    """The `publisher schedule` process: `run_forever()` or `run_once()`; `stop()` from any thread."""

    def __init__(self, settings: Settings, plan: ScheduleSettings, lease: float = LEASE) -> None:
        self.settings, self.plan, self.lease = settings, plan, lease
        self.config = str(settings.source) if settings.source else ""
        self.trigger = CronSchedule(plan.cron, plan.timezone, plan.jitter)
        self.scheduler: Any = None
        self.error: Exception | None = None
        self.results: list[RunResult] = []
        self._guard = threading.Lock()
        self._down = False

    def _when(self, moment: datetime | None) -> str:
        if moment is None:  # a trigger that never fires (config validation refuses such a cron)
            return "never"
        return f"{moment.astimezone(self.plan.tz):%Y-%m-%d %H:%M:%S %Z} ({moment.astimezone(UTC):%H:%M:%S} UTC)"

    def _build(self, persistent: bool) -> Any:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED  # type: ignore[import-untyped]
        from apscheduler.jobstores.memory import MemoryJobStore  # type: ignore[import-untyped]
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]

        state = self.settings.paths.state
        engine_options = {"connect_args": {"timeout": BUSY_TIMEOUT}} if state.is_sqlite else {"pool_pre_ping": True}
        default = SQLAlchemyJobStore(url=state.url.render_as_string(hide_password=False), tablename="apscheduler_jobs",
                                     engine_options=engine_options) if persistent else MemoryJobStore()
        scheduler = _apscheduler()(
            timezone=self.plan.tz, jobstores={"default": default, "memory": MemoryJobStore()},
            jobstore_retry_interval=STORE_RETRY,
            executors={"default": _executor()(max_workers=1)},
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
        """The foreground scheduler. On SQLite, a second one on the same state raises lock.Busy at once; on a
        database server, it waits to lead (see the module's docstring)."""
        if self.settings.paths.state.is_sqlite:
            with lock.acquire_scheduler(self.settings.paths.state):
                self.run_scheduler(RESUME_FUNC, "scheduler started (pid %d) for %s: %s, catch_up %s")
        else:
            from publisher.schedule_lead import lead_forever

            lead_forever(self)
        log.info("scheduler stopped")

    def run_scheduler(self, resume: str, started: str) -> None:
        """Build the scheduler with its persistent job store and run it until it is shut down."""
        from apscheduler.events import EVENT_SCHEDULER_STARTED

        with self._guard:
            self._down, self.error = False, None
        self.scheduler = self._build(persistent=True)
        self.scheduler.add_listener(self._started, EVENT_SCHEDULER_STARTED)
        # however slow the start (a busy job store), these date jobs run: no misfire_grace_time
        self.scheduler.add_job(resume, "date", id="resume", jobstore="memory", args=[self.config],
                               name="finish an unfinished delivery", misfire_grace_time=None)
        log.info(started, os.getpid(), self.settings.paths.state, self.trigger, self.plan.catch_up)
        self._start()

    def run_once(self) -> RunResult:
        """One run now, through the same scheduler, executor, job function and lock (wait 0)."""
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED

        self.scheduler = self._build(persistent=False)
        self.scheduler.add_listener(self._once_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self.scheduler.add_listener(lambda _event: STOP.is_set() and self.shutdown(False), EVENT_SCHEDULER_STARTED)
        self.scheduler.add_job(JOB_FUNC, "date", id="once", args=[self.config], kwargs={"wait": 0},
                               name="publisher publish (once)", misfire_grace_time=None)
        self._start()
        return self.results[0] if self.results else RunResult(130, "stopped before the run started")

    def stop(self, signum: int) -> None:
        """On a stop signal (called from publisher.stopsignals' thread, never from a Python signal handler:
        it takes locks): a run in progress finishes its current message; then the scheduler exits."""
        if not STOP.is_set():
            STOP.set()
            log.warning("%s received: stopping (a run in progress finishes its current message first)",
                        signal.Signals(signum).name)
        if self.scheduler is not None and self.scheduler.running:
            threading.Thread(target=self.shutdown, name="publisher-stop", daemon=True).start()

    def shutdown(self, wait: bool = True) -> bool:
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
            self.shutdown(False)
            return
        if STOP.is_set() or not self.leading():
            self.shutdown(False)

    def leading(self) -> bool:
        """True on SQLite (the file lock is held for life); on a server, while the lease is held."""
        return self.settings.paths.state.is_sqlite or (Leading.term is not None and Leading.term.held())

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
        rescheduled = not self.trigger.same_times(job.trigger)
        if rescheduled:  # what reschedule_job does, in the same single write as the other changes
            changes.update(trigger=self.trigger, next_run_time=self.trigger.get_next_fire_time(None, utc_now()))
        elif str(job.trigger) != str(self.trigger):
            changes["trigger"] = self.trigger  # jitter only: the next run time stays
        else:
            self._missed_while_down(job.next_run_time)
        old = job.trigger
        if changes:  # one write, logged once stored: a kill before it leaves the stored job as it was
            job = scheduler.modify_job(JOB_ID, "default", **changes)
        if rescheduled:
            log.info("schedule changed from %s to %s: rescheduled", old, self.trigger)
        updated = sorted(set(changes) - ({"trigger", "next_run_time"} if rescheduled else set()))
        if updated:
            log.info("job updated from the config: %s", ", ".join(updated))
        log.info("next run %s", self._when(job.next_run_time))

    def _missed_while_down(self, due: datetime | None) -> None:
        now = utc_now()
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
        now = utc_now()
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
        threading.Thread(target=self.shutdown, name="publisher-once", daemon=True).start()
