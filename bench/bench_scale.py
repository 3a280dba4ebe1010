"""Benchmark several senders: one digest to 100,000 subscribers into Postfix's smtp-sink on 127.0.0.1, sent by
1 `publisher send` on SQLite, then by 1, 2 and 4 `publisher send --worker` processes on one PostgreSQL state.

Setup (not timed): a throwaway PostgreSQL cluster (tests/pgserver.py: initdb in a temporary folder, Unix socket;
PostgreSQL's own durability settings unless --synchronous-commit off; the senders turn synchronous_commit off for
their own sessions either way, see publisher/state/engine.py), a site with the repo's articles, the state
made by `publisher subscribers import` of one reader, N-1 more inserted in bulk through the schema, and the digest
queued by `publisher publish --no-send`. On PostgreSQL this is done once, into a database every run clones
(CREATE DATABASE ... TEMPLATE), so each run starts from the same N queued rows with no dead tuples.

Measured per run: messages/s (N / wall time from the first worker's spawn to the last one's exit), peak memory of
each worker (ru_maxrss from os.wait4 on that child), database transactions per message (pg_stat_database
xact_commit + xact_rollback of the run's database, before and after), statements per message (one calibration
run of --calibrate messages with log_statement = all on its database, counting the statements the server
logged), and smtp-sink's counter (every message must arrive, once). The limit: Postfix's smtp-source with as
many sessions as workers (-s K), same message bytes, same sink, same run.

    /work/main/.venv/bin/python bench/bench_scale.py [--subscribers 100000] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from bench_deliver import (  # bench/ is on sys.path when run as a script
    CLOCK,
    DELIVERED,
    HOST,
    SENDER,
    BenchError,
    Sink,
    bench_env,
    build_site,
    checked,
    load_digest,
    postfix_tool,
    render_messages,
    running_sink,
)
from benchtable import Row, Run, cli_command, number_list, print_table, reap, spawn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.pgserver import PgServer, _binary  # noqa: E402  (the tests' throwaway cluster)

SEED_DB = "scale_seed"
CHUNK = 10_000  # subscribers per bulk insert
IMPORTED = re.compile(r"^1 added, 0 duplicates, 0 invalid$", re.MULTILINE)
PUBLISHED = re.compile(r"^\d+ articles read, \d+ published.*; digest (\S+);.*$", re.MULTILINE)
LOGGED = re.compile(r"^(\S+) LOG:  (?:statement|execute [^:]*): ", re.MULTILINE)

# Targets (issue 10)
PG_SHARE_OF_SQLITE = 0.80  # 1 worker on PostgreSQL >= this share of 1 on SQLite
FOUR_OVER_ONE = 1.5  # 4 workers >= this many times 1 worker
SHARE_OF_SOURCE = 0.90  # aggregate >= this share of smtp-source's rate


class BenchServer(PgServer):
    """The tests' cluster, with PostgreSQL's durability (fsync on) and the database name in every log line."""

    def __init__(self, synchronous_commit: str) -> None:
        super().__init__()
        self.synchronous_commit = synchronous_commit

    def start(self) -> None:
        options = (f"-k {self.socket} -c listen_addresses='' -c synchronous_commit={self.synchronous_commit} "
                   "-c max_connections=100 -c log_line_prefix='%d '")
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    @property
    def log(self) -> Path:
        return self.root / "log"

    def execute(self, *statements: str) -> None:
        with self.admin() as conn:
            for statement in statements:
                conn.execute(statement)

    def transactions(self, database: str) -> int:
        """Committed and rolled-back transactions of `database` so far (pg_stat_database)."""
        with self.admin() as conn:
            row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                               (database,)).fetchone()
        return int(str(row[0])) if row else 0


@dataclass(frozen=True)
class Result:
    name: str
    workers: int
    messages: int
    seconds: float
    rss_mb: list[float]
    transactions: int | None  # database transactions during the run (PostgreSQL)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


# --- seeding --------------------------------------------------------------------------------------------------------

def seed(root: Path, cli: Sequence[str], port: int, size: int, env: dict[str, str], url: str) -> Path:
    """A site whose state holds `size` active subscribers and one digest queued to them all; its config."""
    site = root / "site"
    site.mkdir()
    config = build_site(site, port)
    one = site / "one.csv"
    one.write_text("email,name\nreader0000000@subscribers.example.org,Reader Number 0\n", encoding="utf-8")
    cfg = ["--config", str(config)]
    checked(run_cli([*cli, "subscribers", "import", str(one), *cfg], site, env), "import of one reader", IMPORTED)
    started = time.perf_counter()
    insert_subscribers(url, size)
    inserted = time.perf_counter() - started
    published = run_cli([*cli, "publish", *cfg, "--clock", CLOCK, "--no-send"], site, env)
    checked(published, "publish --no-send", PUBLISHED)
    queued = count_rows(url, "queued")
    if queued != size:
        raise BenchError(f"the digest queued {queued:,} messages, expected {size:,}")
    print(f"  seeded {size:,} subscribers: bulk insert {inserted:.1f} s, publish --no-send {published.seconds:.1f} s")
    return config


def run_cli(cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> Run:
    return reap(spawn(cmd, cwd, env))


def insert_subscribers(url: str, size: int) -> None:
    """Readers 1..size-1 (reader 0 came through the CLI), active, straight into the subscribers table."""
    from publisher.state.schema import subscribers

    stamp = "2026-11-01T00:00:00+00:00"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for first in range(1, size, CHUNK):
                conn.execute(subscribers.insert(), [
                    {"id": uuid.uuid4().hex, "email": f"reader{i:07d}@subscribers.example.org",
                     "address": f"reader{i:07d}@subscribers.example.org",
                     "name": f"Zoë Müller {i}" if i % 10 == 0 else f"Reader Number {i}", "status": "active",
                     "bounces": 0, "created": stamp, "changed": stamp} for i in range(first, min(first + CHUNK, size))])
    finally:
        engine.dispose()


def count_rows(url: str, status: str) -> int:
    from publisher.state.schema import deliveries

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(deliveries.c.status == status)).scalar_one())
    finally:
        engine.dispose()


# --- one run --------------------------------------------------------------------------------------------------------

def send(cli: Sequence[str], config: Path, env: dict[str, str], workers: int, worker_flag: bool) -> list[Run]:
    """`workers` senders at once; each one's Run (wall time from its own spawn)."""
    cmd = [*cli, "send", "--config", str(config), "--clock", CLOCK, *(["--worker"] if worker_flag else [])]
    children = [spawn(cmd, config.parent, env) for _ in range(workers)]
    return [reap(child) for child in children]


def check_runs(runs: list[Run], what: str, size: int, url: str, sink: Sink, before: int) -> None:
    """Every sender exited 0 and said what it sent; together N, each row sent, smtp-sink got N."""
    sent = 0
    for n, result in enumerate(runs, 1):
        sent += int(checked(result, f"{what}, sender {n}", DELIVERED).group(1))
    if sent != size:
        raise BenchError(f"{what}: the senders reported {sent:,} sent, expected {size:,}")
    rows = count_rows(url, "sent")
    if rows != size:
        raise BenchError(f"{what}: {rows:,} journal rows are sent, expected {size:,}")
    sink.expect(before, size, what)


def timed_run(name: str, cli: Sequence[str], config: Path, env: dict[str, str], workers: int, *, size: int,
              url: str, sink: Sink, server: BenchServer | None = None, database: str = "") -> Result:
    before_tx = server.transactions(database) if server else None
    before = sink.count()
    started = time.perf_counter()
    runs = send(cli, config, env, workers, worker_flag=server is not None)
    seconds = time.perf_counter() - started
    check_runs(runs, name, size, url, sink, before)
    transactions = None
    if server is not None and before_tx is not None:
        time.sleep(0.5)  # the backends' statistics reach pg_stat_database when they exit
        transactions = server.transactions(database) - before_tx
    result = Result(name, workers, size, seconds, [r.max_rss_mb for r in runs], transactions)
    per = f", {transactions / size:.2f} transactions/msg" if transactions is not None else ""
    print(f"  {name:<28} {size:>7,}: {seconds:7.2f} s, {result.rate:7,.0f} msg/s, peak "
          f"{max(result.rss_mb):.0f} MB a worker{per}")
    return result


def pg_runs(server: BenchServer, cli: Sequence[str], config: Path, sink: Sink, size: int,
            counts: Sequence[int]) -> list[Result]:
    results = []
    for workers in counts:
        database = f"scale_run_{workers}"
        server.execute(f"CREATE DATABASE {database} TEMPLATE {SEED_DB}")
        env = bench_env() | {"PUBLISHER_DATABASE_URL": server.url(database)}
        results.append(timed_run(f"PostgreSQL, {workers} worker{'s' * (workers > 1)}", cli, config, env, workers,
                                 size=size, url=server.url(database), sink=sink, server=server, database=database))
        server.execute(f"DROP DATABASE {database}")
    return results


def statements_per_message(server: BenchServer, cli: Sequence[str], config: Path, size: int) -> float:
    """One worker sends the first `size` messages of a copy of the seed with log_statement = all; the statements
    the server logged for that database, per message (each is at least one round trip)."""
    database = "scale_calibrate"
    server.execute(f"CREATE DATABASE {database} TEMPLATE {SEED_DB}",
                   f"ALTER DATABASE {database} SET log_statement = 'all'")
    url = server.url(database)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # keep `size` rows queued, cancel the rest out of the way
        conn.execute(sa.text("UPDATE deliveries SET status = 'cancelled' WHERE subscriber_id NOT IN "
                             "(SELECT subscriber_id FROM deliveries ORDER BY subscriber_id LIMIT :n)"), {"n": size})
    engine.dispose()
    start = server.log.stat().st_size
    runs = send(cli, config, bench_env() | {"PUBLISHER_DATABASE_URL": url}, 1, worker_flag=True)
    sent = int(checked(runs[0], "calibration run", DELIVERED).group(1))
    with server.log.open("rb") as f:
        f.seek(start)
        logged = f.read().decode("utf-8", "replace")
    statements = sum(1 for m in LOGGED.finditer(logged) if m.group(1) == database)
    server.execute(f"DROP DATABASE {database}")
    return statements / max(sent, 1)


# --- the limit ------------------------------------------------------------------------------------------------------

def smtp_source(binary: Path, sink: Sink, message: bytes, count: int, sessions: int, workdir: Path) -> float:
    """Postfix's smtp-source, `sessions` sessions in parallel, each reused (-d), the same message: its msg/s."""
    path = workdir / "message.txt"
    path.write_bytes(message.replace(b"\r\n", b"\n"))  # -F adds CRLF to every line
    cmd = [str(binary), "-d", "-s", str(sessions), "-m", str(count), "-F", str(path), "-f", SENDER,
           "-t", "reader0000000@subscribers.example.org", f"{HOST}:{sink.port}"]
    before = sink.count()
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchError(f"smtp-source exited {result.returncode}: {result.stderr.decode('utf-8', 'replace')}")
    sink.expect(before, count, f"smtp-source -s {sessions}")
    print(f"  smtp-source -d -s {sessions:<11} {count:>7,}: {seconds:7.2f} s, {count / seconds:7,.0f} msg/s")
    return count / seconds


# --- the table ------------------------------------------------------------------------------------------------------

def rows(sqlite: Result | None, pg: Sequence[Result], source: dict[int, float], statements: float | None) -> list[Row]:
    table: list[Row] = []
    for r in [*([sqlite] if sqlite else []), *pg]:
        limit = source[r.workers]
        table.append(Row(f"{r.name}: {r.messages:,} msgs in {r.seconds:.1f} s", f"{r.rate:,.0f} msg/s",
                         f">= {SHARE_OF_SOURCE:.0%} of smtp-source -s {r.workers} ({limit:,.0f})",
                         r.rate >= SHARE_OF_SOURCE * limit))
    one = next((r for r in pg if r.workers == 1), None)
    if one and sqlite:
        table.append(Row("PostgreSQL 1 worker / SQLite 1 sender", f"{one.rate / sqlite.rate:.0%}",
                         f">= {PG_SHARE_OF_SQLITE:.0%}", one.rate >= PG_SHARE_OF_SQLITE * sqlite.rate))
    four = next((r for r in pg if r.workers == 4), None)
    if one and four:
        table.append(Row("PostgreSQL 4 workers / 1 worker", f"{four.rate / one.rate:.2f}x",
                         f">= {FOUR_OVER_ONE}x", four.rate >= FOUR_OVER_ONE * one.rate))
    for r in pg:
        if r.transactions is not None:
            table.append(Row(f"{r.name}: database transactions per message", f"{r.transactions / r.messages:.2f}",
                             "-", None))
    if statements is not None:
        table.append(Row("PostgreSQL, 1 worker: statements per message (log_statement)", f"{statements:.2f}", "-",
                         None))
    for r in [*([sqlite] if sqlite else []), *pg]:
        table.append(Row(f"{r.name}: peak memory per worker", f"{max(r.rss_mb):.0f} MB", "-", None))
    return table


def load() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was with other work too."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- main -----------------------------------------------------------------------------------------------------------

def sqlite_run(root: Path, cli: Sequence[str], sink: Sink, size: int) -> tuple[Result, bytes]:
    """One sender on an SQLite state; also a rendered message for smtp-source."""
    folder = root / "sqlite"
    folder.mkdir()
    url = f"sqlite:///{folder / 'site' / 'publisher.db'}"
    config = seed(folder, cli, sink.port, size, bench_env(), url)
    _, _, message = render_messages(config, load_digest(config), 1)
    return timed_run("SQLite, 1 sender", cli, config, bench_env(), 1, size=size, url=url, sink=sink), message


def pg_all(root: Path, cli: Sequence[str], sink: Sink, args: argparse.Namespace) -> tuple[list[Result], float]:
    server = BenchServer(args.synchronous_commit)
    try:
        server.init()
        server.execute(f"CREATE DATABASE {SEED_DB}")
        folder = root / "postgresql"
        folder.mkdir()
        url = server.url(SEED_DB)
        config = seed(folder, cli, sink.port, args.subscribers, bench_env() | {"PUBLISHER_DATABASE_URL": url}, url)
        results = pg_runs(server, cli, config, sink, args.subscribers, args.workers)
        statements = statements_per_message(server, cli, config, min(args.calibrate, args.subscribers))
        return results, statements
    finally:
        server.close()


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=100_000, metavar="N", help="[default: 100000]")
    parser.add_argument("--workers", type=number_list, default=[1, 2, 4],
                        help="worker counts on PostgreSQL [default: 1,2,4]")
    parser.add_argument("--reference", type=int, default=20_000, metavar="N",
                        help="messages of each smtp-source run [default: 20000]")
    parser.add_argument("--calibrate", type=int, default=2_000, metavar="N",
                        help="messages of the log_statement run that counts statements [default: 2000]")
    parser.add_argument("--synchronous-commit", choices=["on", "off"], default="on",
                        help="the server's synchronous_commit (the workers set it off for their own sessions "
                             "either way) [default: on, PostgreSQL's own default]")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    sink_binary, source_binary = postfix_tool("smtp-sink", None), postfix_tool("smtp-source", None)
    cli = cli_command()
    root = Path(tempfile.mkdtemp(prefix="publisher-bench-scale-"))
    try:
        with running_sink(sink_binary, root) as sink:
            print(f"scale benchmark: {args.subscribers:,} subscribers | {' '.join(cli)} | {sink_binary} on "
                  f"{HOST}:{sink.port} | PostgreSQL synchronous_commit={args.synchronous_commit} | load "
                  f"{load()} on {os.cpu_count()} cores")
            sqlite, message = sqlite_run(root, cli, sink, args.subscribers)
            pg, statements = pg_all(root, cli, sink, args)
            counts = sorted({1, *args.workers})
            source = {k: smtp_source(source_binary, sink, message, args.reference, k, root) for k in counts}
    except (BenchError, OSError, subprocess.SubprocessError, sa.exc.SQLAlchemyError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load at the end: {load()} (other processes share the cores: see bench/README.md)")
    print()
    print_table(rows(sqlite, pg, source, statements))
    return 0


if __name__ == "__main__":
    sys.exit(main())
