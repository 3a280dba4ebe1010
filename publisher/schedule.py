"""`publisher schedule`: the scheduled job (one run), as stored in the job store by its importable name.
The APScheduler wiring (job store, trigger, job defaults, leadership) is in publisher/schedule_service.py.

- A run is `publish_and_deliver` (the code of `publisher publish`) under the run lock of lock.py. A stop
  request (SIGTERM, SIGINT) lets a run finish its current message and record it; the scheduler then
  exits, and its next start first finishes any delivery left unfinished.
- On a state on a database server, several schedulers may run; only the leader (publisher.state.leader)
  runs jobs, and each run is claimed in the `runs` table by its fire time with the leader's epoch: a run
  done is never run again, and a run whose leader died mid-way is finished by the next leader (publish
  again only when its publish was not recorded, which publish's own idempotence makes harmless; the
  delivery resumed from the journal).

Only this module, the service and the CLI read the clock.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from publisher import lock
from publisher.cron import ScheduleSettings
from publisher.errors import PublisherError
from publisher.plural import count

if TYPE_CHECKING:
    from publisher.config import Settings
    from publisher.deliver.send import DeliveryReport
    from publisher.deliver.send import Progress as SendProgress
    from publisher.models import PublishReport
    from publisher.pipeline import Progress
    from publisher.state.leader import Claim, Term

log = logging.getLogger(__name__)
JOB_ID = "publish"
JOB_FUNC = "publisher.schedule:run_job"
RESUME_FUNC = "publisher.schedule:resume_delivery"
RESUME_RUNS = "publisher.schedule:resume_runs"  # on a database server: runs an earlier leader left, then the journal
STOP = threading.Event()  # set on SIGTERM/SIGINT: a run finishes its current message, the scheduler exits


def load_settings(config: Path | None, cwd: Path) -> tuple[Settings, ScheduleSettings]:
    """The settings and their [schedule] section."""
    from publisher.config import load_settings as load

    settings = load(config, cwd)
    return settings, settings.schedule


# --- one run ---------------------------------------------------------------------------------------

def utc_now() -> datetime:
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


def _summary(stamp: str, report: PublishReport, new: int, delivery: DeliveryReport, seconds: float) -> RunResult:
    digest = f"digest {report.digest}" if report.digest else "no digest"
    line = (f"run {stamp}: {count(new, 'new article')}, {count(len(report.written), 'file')} written, {digest}, "
            f"{delivery.sent} sent, {delivery.failed} failed, {delivery.bounced} bounced")
    line += f", {delivery.cancelled} cancelled" if delivery.cancelled else ""
    line += f", {count(report.skipped, 'article')} skipped with errors" if report.errors else ""
    line += f"; {seconds:.2f} s"
    if delivery.stopped:
        line += "; stopped by a signal after recording the last message: the rest is sent on the next start"
    code = 130 if delivery.stopped else 1 if report.errors or delivery.failed else 0
    log.log(logging.WARNING if code else logging.INFO, "%s", line)
    for severity, text in delivery.problem_lines():
        log.log(logging.WARNING if severity == "warning" else logging.ERROR, "run %s: %s", stamp, text)
    return RunResult(code, line)


def _failed(stamp: str, error: Exception) -> RunResult:
    """One line for a run that did not complete; the scheduler goes on. A bug (not a PublisherError)
    names where it was raised; its traceback follows only with -v (publisher -v schedule)."""
    if isinstance(error, PublisherError):
        line = f"run {stamp}: not done: {error}"
        log.error("%s", line)
        return RunResult(error.exit_code, line)
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    verbose = logging.getLogger().isEnabledFor(logging.INFO)
    line = f"run {stamp}: failed with an unexpected error{where}: {error!r}"
    log.error("%s%s", line, "" if verbose else " (publisher -v schedule shows the traceback)",
              exc_info=error if verbose else None)
    return RunResult(1, line)


def run_job(config: str, wait: float | None = None, due: str | None = None) -> RunResult:
    """The scheduled job, stored in the job store by this name (publisher.schedule:run_job) with the
    config path ('' for the built-in defaults). `wait`: seconds to wait for the run lock (default: catch_up).
    `due`: the fire time (ISO UTC, given by the service's executor): on a database server, the leader
    claims the run by it, so that it runs once whichever scheduler leads."""
    started, timer = utc_now(), time.perf_counter()
    stamp = f"{started:%Y-%m-%d %H:%M:%S} UTC"
    try:
        settings, plan = load_settings(Path(config) if config else None, Path.cwd())
        stamp = f"{started.astimezone(plan.tz):%Y-%m-%d %H:%M:%S %Z}"
        patience = plan.catch_up_seconds if wait is None else wait
        if due is not None and not settings.paths.state.is_sqlite:
            return claimed_run(settings, plan, due, patience)
        with lock.acquire(settings.paths.state, patience, "the scheduled run", stop=STOP.is_set,
                          hint="this run is skipped; the next one goes ahead as scheduled"):
            report, delivery = publish_and_deliver(settings, utc_now, STOP.is_set)
        for problem in report.problems:
            log.warning("%s: %s", problem.severity, problem)
        return _summary(stamp, report, _carried(settings, report.digest), delivery, time.perf_counter() - timer)
    except Exception as e:  # one run's error is logged in one line; the scheduler goes on
        return _failed(stamp, e)


def resume_delivery(config: str) -> RunResult:
    """At start: finish a delivery that a stop (or a crash) left unfinished, as `publisher send` would."""
    started, timer = utc_now(), time.perf_counter()
    stamp = f"{started:%Y-%m-%d %H:%M:%S} UTC"
    try:
        settings, plan = load_settings(Path(config) if config else None, Path.cwd())
        with lock.acquire(settings.paths.state, plan.catch_up_seconds, "the unfinished delivery", stop=STOP.is_set,
                          hint="'publisher send' or the next run finishes it"):
            from publisher.deliver.send import deliver_pending

            delivery = deliver_pending(settings, utc_now, STOP.is_set)
    except Exception as e:
        return _failed(stamp, e)
    if not delivery.digests:
        return RunResult(0, "")
    line = (f"resumed the unfinished delivery of {', '.join(delivery.digests)}: {delivery.sent} sent, "
            f"{delivery.failed} failed, {delivery.bounced} bounced; {time.perf_counter() - timer:.2f} s")
    log.info("%s", line)
    return RunResult(130 if delivery.stopped else 1 if delivery.failed else 0, line)


# --- a run on a shared state: claimed once, by the leader -----------------------------------------------

class Leading:
    """The leadership term of this process while it leads (set by the service; None while it waits)."""

    term: Term | None = None


def _stamp(run_id: str, plan: ScheduleSettings) -> str:
    return f"{datetime.fromisoformat(run_id).astimezone(plan.tz):%Y-%m-%d %H:%M:%S %Z}"


def run_id(due: datetime) -> str:
    """A run's id in the runs table: its fire time, ISO UTC (every leader reads it from the job store)."""
    return due.astimezone(UTC).isoformat()


def _claim(settings: Settings, term: Term, run: str) -> tuple[Claim, int | None]:
    from publisher.state import leader
    from publisher.state.server import server_connection

    with server_connection(settings.paths.state, write=True) as conn:
        return leader.claim(conn, run, term.me, term.epoch)


def _mark(settings: Settings, term: Term, run: str, status: str) -> None:
    """Record the run's progress, fenced by the epoch; a later leader's takeover is said in one line."""
    from publisher.state import leader
    from publisher.state.server import server_connection

    with server_connection(settings.paths.state, write=True) as conn:
        if not leader.mark(conn, run, term.epoch, status):
            log.warning("run %s: a later leader took this run over; this scheduler (epoch %d) leaves it", run,
                        term.epoch)


def _skipped(stamp: str, what: Claim, before: int | None) -> RunResult:
    reason = {"done": f"already done (by the leader of epoch {before})",
              "busy": "already started by this scheduler",
              "lost": "this scheduler no longer leads"}[what.value]
    line = f"run {stamp}: not run{' again' if what.value != 'lost' else ''}: {reason}"
    log.log(logging.WARNING if what.value == "lost" else logging.INFO, "%s", line)
    return RunResult(0, line)


def claimed_run(settings: Settings, plan: ScheduleSettings, run: str, patience: float) -> RunResult:
    """The run `run` (its fire time), claimed by this leader under the run lock, then published (unless
    an earlier leader recorded its publish) and delivered; recorded done unless stopped or lost mid-way."""
    from publisher.deliver.send import deliver_pending
    from publisher.pipeline import publish
    from publisher.state.leader import DONE, PUBLISHED, Claim

    stamp, timer, term = _stamp(run, plan), time.perf_counter(), Leading.term
    if term is None:
        return _skipped(stamp, Claim.LOST, None)

    def stop() -> bool:
        return STOP.is_set() or not term.held()

    with lock.acquire(settings.paths.state, patience, "the scheduled run", stop=stop,
                      hint="this run is skipped; the next one goes ahead as scheduled"):
        what, before = _claim(settings, term, run)
        if what not in (Claim.NEW, Claim.PUBLISH, Claim.DELIVER):
            return _skipped(stamp, what, before)
        if before is not None:
            log.warning("run %s: taken over from the leader of epoch %d, which stopped before finishing it%s",
                        stamp, before, ": its delivery is resumed" if what is Claim.DELIVER else "")
        try:
            report = None if what is Claim.DELIVER else publish(settings, utc_now())
            if report is not None:
                _mark(settings, term, run, PUBLISHED)
            # the journal rows it claims are leased as long as the lead: a dead leader's return as soon
            delivery = deliver_pending(settings, utc_now, stop, lease=term.ttl)
        except Exception:
            if term.held() and not STOP.is_set():  # the run was tried and failed (logged): not tried again
                _mark(settings, term, run, DONE)
            raise
        if not delivery.stopped:
            _mark(settings, term, run, DONE)
    if report is None:
        return _resumed(stamp, delivery, time.perf_counter() - timer)
    for problem in report.problems:
        log.warning("%s: %s", problem.severity, problem)
    return _summary(stamp, report, _carried(settings, report.digest), delivery, time.perf_counter() - timer)


def _resumed(stamp: str, delivery: DeliveryReport, seconds: float) -> RunResult:
    line = (f"run {stamp}: finished: {delivery.sent} sent, {delivery.failed} failed, {delivery.bounced} bounced "
            f"(its publish was done by the earlier leader); {seconds:.2f} s")
    log.log(logging.WARNING if delivery.failed else logging.INFO, "%s", line)
    return RunResult(130 if delivery.stopped else 1 if delivery.failed else 0, line)


def resume_runs(config: str) -> RunResult:
    """When a scheduler becomes leader on a database server: finish the runs earlier leaders left
    unfinished (by their fire time), then any delivery left in the journal (as `resume_delivery`)."""
    from publisher.state import leader
    from publisher.state.server import server_connection

    results: list[RunResult] = []
    try:
        settings, plan = load_settings(Path(config) if config else None, Path.cwd())
        term = Leading.term
        if term is not None:
            with server_connection(settings.paths.state, write=True) as conn:
                left = leader.unfinished(conn, term.epoch)
            results = [_finish(settings, plan, run) for run in left]
    except Exception as e:
        return _failed(f"{utc_now():%Y-%m-%d %H:%M:%S} UTC", e)
    journal = resume_delivery(config)
    return max([*results, journal], key=lambda result: result.exit_code)


def _finish(settings: Settings, plan: ScheduleSettings, run: str) -> RunResult:
    try:
        return claimed_run(settings, plan, run, plan.catch_up_seconds)
    except Exception as e:  # one run's error is one line; the others are still finished
        return _failed(_stamp(run, plan), e)
