"""When to publish: the [schedule] settings, standard cron parsed and translated for APScheduler 3,
and a trigger that is right across DST changes (a 02:30 job runs once on the autumn change and at the
first valid time after the spring gap). APScheduler is imported only when a trigger is used, so
config.py can import the settings checks cheaply.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_CRON = "0 7 * * 1"  # Monday 07:00


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
        never = never_fires(parse_cron(value))
    except ValueError as e:
        return (f"is not a cron expression: {e}; write minute hour day-of-month month day-of-week, "
                "e.g. '0 7 * * mon' (Monday 07:00)")
    return f"never fires: {never}" if never else None


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
        raise ValueError(f"{len(words)} field{'' if len(words) == 1 else 's'}, expected 5 (or 6 with a leading "
                         "seconds field)")
    words = words if len(words) == 6 else ["0", *words]
    second, minute, hour, day, month, weekday = (_values(w, *spec) for w, spec in zip(words, CRON_FIELDS, strict=True))
    return Cron(second, minute, hour, day, month, frozenset(d % 7 for d in weekday),
                day_star=words[3].startswith("*"), weekday_star=words[5].startswith("*"),
                wall_star=words[1].startswith("*") or words[2].startswith("*"))


MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February 29 exists (in leap years)


def _ordinal(day: int) -> str:
    return f"{day}{'th' if 10 <= day % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"


def _either(words: list[str], joint: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {joint} {words[-1]}"


def never_fires(cron: Cron) -> str | None:
    """Why the parsed expression can never fire (every day of month it names is past the end of every
    month it names: '0 7 31 2 *'), or None. When the day of week is restricted too, cron runs on days
    matching either field, so the expression fires; with `*` there, any date that exists comes round
    on every weekday over the years."""
    if cron.day_star or not cron.weekday_star:
        return None
    if any(day <= MONTH_DAYS[month - 1] for day in cron.day for month in cron.month):
        return None
    months = [MONTH_NAMES[m - 1] for m in sorted(cron.month)]
    days = [_ordinal(d) for d in sorted(cron.day)]
    ranges = [f"{MONTH_NAMES[m - 1]} 1-{MONTH_DAYS[m - 1]}" for m in sorted(cron.month)]
    return (f"{_either(months, 'and')} {'has' if len(months) == 1 else 'have'} no {_either(days, 'or')}; "
            f"pick a day of month that exists ({_either(ranges, 'or')})")


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
    job store as (cron, timezone, jitter) only; the job store refers to it as publisher.cron.CronSchedule."""

    def __init__(self, cron: str, timezone: str, jitter: int = 0) -> None:
        self._setup(cron, timezone, jitter)

    def _setup(self, cron: str, timezone: str, jitter: int) -> None:
        from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
        from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

        BaseTrigger.register(CronSchedule)  # an APScheduler trigger (registering again is harmless)

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


def next_runs(plan: ScheduleSettings, count: int, now: datetime) -> list[NextRun]:
    """The next `count` run times after `now`, as the scheduler computes them (jitter aside)."""
    trigger = CronSchedule(plan.cron, plan.timezone)
    start = now.astimezone(plan.tz)
    runs: list[NextRun] = []
    previous: datetime | None = None
    while len(runs) < count and (found := trigger.next_time(previous, previous or start)):
        previous, note = found
        runs.append(NextRun(previous, previous.astimezone(UTC), note))
    return runs


