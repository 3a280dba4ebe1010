"""`publisher schedule`: publish on a cron schedule in the foreground (see publisher/schedule.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from publisher.cli.options import clock_option, config_option, fail, parse_clock

if TYPE_CHECKING:
    from publisher.cron import ScheduleSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _log_runs() -> None:
    """The scheduler's own lines (one per run, skipped runs, start and stop) are always shown, with a time."""
    import logging

    logging.getLogger("publisher.schedule").setLevel(logging.INFO)  # the service and the lead loop log here too
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))


def _print_next(count: int, plan: ScheduleSettings, clock: str | None) -> None:
    from publisher.cron import next_runs

    runs = next_runs(plan, count, parse_clock(clock) if clock else datetime.now(UTC))
    if not runs:  # config validation refuses such a cron; this is the trigger's own word on it
        click.echo(f"error: 'schedule.cron' = '{plan.cron}' never fires in {plan.timezone}", err=True)
        sys.exit(2)
    jitter = f", each up to {plan.jitter} s later (jitter)" if plan.jitter else ""
    what = "run" if len(runs) == 1 else f"{len(runs)} runs"
    click.echo(f"next {what} of '{plan.cron}' in {plan.timezone}{jitter}:")
    for run in runs:
        note = f"  ({run.note})" if run.note else ""
        click.echo(f"{run.local:%a %Y-%m-%d %H:%M:%S %Z}  =  {run.utc:%Y-%m-%d %H:%M:%S} UTC{note}")


@click.command()
@config_option
@click.option("--next", "count", type=click.IntRange(1, 1000), metavar="N",
              help="Print the next N run times (in the schedule's timezone and in UTC) and exit.")
@click.option("--once", is_flag=True, help="Run the job once now, through the scheduler, and exit.")
@clock_option
@click.option("--lease", type=click.FloatRange(0.5, 3600), default=30.0, envvar="PUBLISHER_SCHEDULER_LEASE",
              hidden=True, help="Seconds a leader's lease lasts unrenewed (state on a database server).")
def schedule(config: Path | None, count: int | None, once: bool, clock: str | None, lease: float) -> None:
    """Publish and deliver on the [schedule] cron, in the foreground, until SIGTERM or Ctrl-C.

    The next run time is kept in the state database: a run missed while stopped starts once on restart
    if it is at most schedule.catch_up late, else it is skipped (with a log line). One line is logged per
    run. On an SQLite state, a second scheduler exits at once (exit code 75), naming the pid of the first.
    On a state on a database server (PostgreSQL), any number may run: one leads and runs the jobs, the
    others wait and take over within 30 s when the leader dies.
    --clock only applies to --next.
    """
    from publisher import stopsignals
    from publisher.errors import PublisherError
    from publisher.schedule import STOP, load_settings
    from publisher.schedule_service import Service

    if count and once:
        raise click.UsageError("give --next or --once, not both")
    if clock and not count:
        raise click.UsageError("--clock only applies to --next")
    try:
        settings, plan = load_settings(config, Path.cwd())
    except PublisherError as e:
        fail(e, e.exit_code)
    if count:
        _print_next(count, plan, clock)
        return
    _log_runs()
    service = Service(settings, plan, lease)
    STOP.clear()
    try:
        with stopsignals.calling(service.stop):  # from a thread: a stop may take locks (see stopsignals)
            if once:
                sys.exit(service.run_once().exit_code)
            service.run_forever()
    except PublisherError as e:
        fail(e, e.exit_code)
