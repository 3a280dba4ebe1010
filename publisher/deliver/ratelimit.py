"""The sending rate shared by every worker: token buckets in the state database.

`email.rate` (messages per second) holds for all `publisher send --worker` processes together: bucket "*".
A per-recipient-domain limit (`domain_rate`, e.g. 20/s to one provider) is a bucket "domain:<domain>" per
domain. A message goes when both its buckets gave it a token.

On PostgreSQL the buckets are rows of `rate_buckets` (name, tokens, stamp), refilled by the database clock
(never a machine's own, so workers whose clocks disagree still share one rate). A worker takes tokens in
small grants (up to GRANT_SECONDS of the rate at once, at least 1) with one UPDATE ... RETURNING that locks
the rows (SELECT ... FOR UPDATE in it) and is its own transaction; it then hands them out locally, so the
database sees about 1 / GRANT_SECONDS statements a second per worker and bucket, whatever the rate. A bucket
holds at most BURST_SECONDS of its rate (a burst after a pause). Over any time T all workers together send
at most rate * (T + BURST_SECONDS) + (tokens granted but not yet used: at most one grant per worker).

A database server that goes away (restarted, unreachable) is waited for: each try again after a backoff
(RETRY_FIRST doubling to RETRY_MOST seconds, stop() still seen), for up to `retry_for` seconds of failures in
a row; then `acquire` raises StateError. One SharedLimit per thread (it holds one connection).

On an SQLite state (one machine, one sender: several workers are refused) the buckets are in-process: no
database round trip. With both rates 0 there is no limit and `acquire` returns at once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, OperationalError

from publisher.errors import StateError
from publisher.state.dialect import now
from publisher.state.engine import SERVER_HINT, first_line, relax_commits, server_engine, strict_commits
from publisher.state.location import StateLocation
from publisher.state.schema import rate_buckets

log = logging.getLogger(__name__)
GLOBAL = "*"
GRANT_SECONDS = 0.1  # a grant is at most this much of the rate (at least one token)
BURST_SECONDS = 1.0  # a bucket holds at most this much of the rate (at least one token)
WAIT_SLICE = 0.1  # seconds: the longest sleep between two looks at stop()
RETRY_FIRST, RETRY_MOST, RETRY_FOR = 0.5, 5.0, 60.0  # seconds: waiting for a database server that went away
EPSILON = 1e-9  # a bucket this close to a whole token has it (rounding must not make a wait of nothing)

# One statement, its own transaction: lock the rows asked for, refill each from the database clock, take up
# to `want` whole tokens, and return what was granted and what is left. The stamp never goes back (a clock
# read before a lock wait may be older than the stamp the previous holder wrote).
TAKE = """
UPDATE rate_buckets AS b
SET tokens = o.refilled - o.granted, stamp = o.stamp
FROM (
    SELECT name, refilled, stamp, LEAST(want, FLOOR(refilled + :eps)) AS granted
    FROM (
        SELECT r.name, w.want,
               LEAST(w.burst, r.tokens + GREATEST(0, c.now - r.stamp) * w.rate) AS refilled,
               GREATEST(r.stamp, c.now) AS stamp
        FROM rate_buckets AS r
        JOIN (VALUES {rows}) AS w(name, rate, burst, want) ON w.name = r.name
        CROSS JOIN (SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS float8) AS now) AS c
        ORDER BY r.name
        FOR UPDATE OF r
    ) AS locked
) AS o
WHERE b.name = o.name
RETURNING b.name, o.granted, o.refilled
"""


class _Unreachable(Exception):
    """The database server cannot be reached now: try again in `wait` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


@dataclass(frozen=True)
class Bucket:
    """One limit: its row name, messages per second, most tokens held, tokens asked for at once."""

    name: str
    rate: float

    @property
    def burst(self) -> float:
        return max(1.0, self.rate * BURST_SECONDS)

    @property
    def grant(self) -> int:
        return max(1, math.floor(self.rate * GRANT_SECONDS))

    def wait(self, tokens: float) -> float:
        """Seconds until a bucket holding `tokens` has one whole token."""
        return max(0.0, (1.0 - tokens) / self.rate)


class _LocalBuckets:
    """Token buckets in this process (an SQLite state: one sender), on a monotonic clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.rows: dict[str, tuple[float, float]] = {}  # name -> (tokens, stamp)

    def take(self, buckets: Sequence[Bucket]) -> dict[str, tuple[int, float]]:
        """name -> (tokens granted, tokens left before the grant) for each bucket."""
        now, result = self.clock(), {}
        for bucket in buckets:
            tokens, stamp = self.rows.get(bucket.name, (bucket.burst, now))
            refilled = min(bucket.burst, tokens + max(0.0, now - stamp) * bucket.rate)
            granted = min(bucket.grant, math.floor(refilled + EPSILON))
            self.rows[bucket.name] = (refilled - granted, now)
            result[bucket.name] = (granted, refilled)
        return result


class SharedLimit:
    """Blocks each message until the shared rate ("*") and its domain's rate allow it; see the module docstring."""

    def __init__(self, location: StateLocation, rate: float, domain_rate: float, *,
                 stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, retry_for: float = RETRY_FOR) -> None:
        if rate < 0 or domain_rate < 0:
            raise ValueError("rates must be 0 (no limit) or more")
        self.location, self.rate, self.domain_rate = location, rate, domain_rate
        self.stop, self.sleep, self.monotonic, self.retry_for = stop, sleep, monotonic, retry_for
        self.down_since: float | None = None  # monotonic() of the first failure in a row to reach the server
        self.retry_at = 0.0  # monotonic(): not before this after a failure
        self.backoff = RETRY_FIRST
        self.held: dict[str, int] = {}  # tokens granted to this process, not used yet
        self.known: set[str] = set()  # bucket rows this process has seen in the database
        self.local = _LocalBuckets(monotonic) if location.is_sqlite else None
        self.conn: sa.Connection | None = None
        self.round_trips = 0  # statements sent to the database, for tests and benchmarks

    def buckets(self, domain: str) -> list[Bucket]:
        """The limits one message to `domain` is under."""
        found = [Bucket(GLOBAL, self.rate)] if self.rate > 0 else []
        if self.domain_rate > 0:
            found.append(Bucket(f"domain:{domain.strip().lower().rstrip('.')}", self.domain_rate))
        return found

    def acquire(self, domain: str) -> bool:
        """Wait until one message to `domain` may go (True), or until stop() is true (False)."""
        buckets = self.buckets(domain)
        while True:
            lacking = [b for b in buckets if self.held.get(b.name, 0) < 1]
            if not lacking:
                for bucket in buckets:
                    self.held[bucket.name] -= 1
                return True
            if self.stop():
                return False
            wait = self._take(lacking)
            if wait > 0:
                self.sleep(min(wait, WAIT_SLICE))

    def _take(self, buckets: Sequence[Bucket]) -> float:
        """Add a grant from each bucket to `held`; the wait until the slowest still empty one has a token."""
        if self.local is not None:
            taken = self.local.take(buckets)
        else:
            try:
                taken = self._take_shared(buckets)
            except _Unreachable as e:
                return e.wait
        wait = 0.0
        for bucket in buckets:
            granted, tokens = taken[bucket.name]
            self.held[bucket.name] = self.held.get(bucket.name, 0) + granted
            if granted < 1:
                wait = max(wait, bucket.wait(tokens))
        return wait

    def _take_shared(self, buckets: Sequence[Bucket]) -> dict[str, tuple[int, float]]:
        if self.monotonic() < self.retry_at:
            raise _Unreachable(self.retry_at - self.monotonic())
        try:
            conn = self._connection()
            missing = [b for b in buckets if b.name not in self.known]
            if missing:
                self._create(conn, missing)
            taken = self._update(conn, buckets)
        except OperationalError as e:  # the server went away or cannot be reached: wait for it
            self.close()
            raise _Unreachable(self._backoff(e)) from e
        except DBAPIError as e:
            self.close()
            raise StateError(f"{self.location}: the shared rate limit cannot be read: {first_line(e)}",
                             SERVER_HINT) from e
        self.down_since, self.backoff = None, RETRY_FIRST
        return taken

    def _backoff(self, error: OperationalError) -> float:
        """Seconds until the next try; StateError once the server has failed for `retry_for` seconds."""
        now = self.monotonic()
        self.down_since = now if self.down_since is None else self.down_since
        if now - self.down_since >= self.retry_for:
            raise StateError(f"{self.location}: the shared rate limit cannot be read: {first_line(error)} "
                             f"(for {now - self.down_since:.0f} s)", SERVER_HINT) from error
        wait, self.backoff = self.backoff, min(self.backoff * 2, RETRY_MOST)
        log.warning("%s: the shared rate limit cannot be read: %s; trying again in %.1f s", self.location,
                    first_line(error), wait)
        self.retry_at = now + wait
        return wait

    def _connection(self) -> sa.Connection:
        if self.conn is None:
            engine = server_engine(self.location).execution_options(isolation_level="AUTOCOMMIT")
            self.conn = engine.connect()
            relax_commits(self.conn)  # a grant lost to a server crash is harmless: see state/engine.py
        return self.conn

    def _create(self, conn: sa.Connection, buckets: Sequence[Bucket]) -> None:
        """The rows this process has not seen yet, full, unless another worker made them first."""
        rows = [{"name": b.name, "tokens": b.burst} for b in buckets]
        statement = postgresql.insert(rate_buckets).values(stamp=now(conn))
        conn.execute(statement.on_conflict_do_nothing(index_elements=["name"]), rows)
        self.round_trips += 1
        self.known.update(b.name for b in buckets)

    def _update(self, conn: sa.Connection, buckets: Sequence[Bucket]) -> dict[str, tuple[int, float]]:
        params: dict[str, object] = {"eps": EPSILON}
        rows = []
        for i, bucket in enumerate(buckets):
            params |= {f"n{i}": bucket.name, f"r{i}": bucket.rate, f"b{i}": bucket.burst, f"w{i}": bucket.grant}
            rows.append(f"(CAST(:n{i} AS varchar), CAST(:r{i} AS float8), CAST(:b{i} AS float8), "
                        f"CAST(:w{i} AS float8))")
        result = conn.execute(sa.text(TAKE.format(rows=", ".join(rows))), params)
        self.round_trips += 1
        taken = {name: (int(granted), float(refilled)) for name, granted, refilled in result}
        gone = [b for b in buckets if b.name not in taken]
        if gone:  # deleted since this process made it: make it again, and ask once more
            self.known.difference_update(b.name for b in gone)
            return self._take_shared(buckets)
        return taken

    def close(self) -> None:
        """Give the connection back (tokens granted but not used are lost, as if sent)."""
        if self.conn is not None:
            strict_commits(self.conn)
            try:
                self.conn.close()
            except DBAPIError as e:
                log.debug("%s: closing the rate-limit connection: %s", self.location, first_line(e))
            self.conn = None
