"""Benchmark delivery: `publisher send` of one digest to 10,000 and 100,000 subscribers into Postfix's smtp-sink.

For each size a throwaway site is built in a temporary folder: publisher.toml ([email] transport "smtp", no rate
limit, [email.smtp] on 127.0.0.1 with security "none"), the articles of the repo's articles/ folder (top level),
N subscribers imported with `publisher subscribers import FILE.csv` and a digest made with
`publisher publish --no-send`. Only `publisher send` is timed: a real subprocess of the installed CLI, waited for
with os.wait4() so `ru_maxrss` is the peak memory of that one process. smtp-sink counts what it accepted, and the
script checks that every message arrived.

Also measured, in the same run and against the same sink:
  - building the messages alone, in-process: token + MessageTemplate.render per subscriber, nothing sent;
  - references with the same message bytes: smtplib with a new connection per message, smtplib over one reused
    connection, and Postfix's own smtp-source (one session, `-d -s 1`, the message file given with `-F`).

smtp-sink and smtp-source come with Debian's `postfix` package (only the two tools are used; the mail system is
not started):  DEBIAN_FRONTEND=noninteractive apt-get install -y postfix

    /work/venv/bin/python bench/bench_deliver.py [--sizes 10000,100000] [--naive 2000] [--reference 20000]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from benchtable import (  # bench/ is on sys.path when run as a script
    Row,
    Run,
    cli_command,
    number_list,
    print_table,
    run,
)

REPO = Path(__file__).resolve().parent.parent
ARTICLES = REPO / "articles"
DEFAULT_SIZES = (10_000, 100_000)
DEFAULT_NAIVE = 2_000  # messages of the one-connection-per-message smtplib loop
DEFAULT_REFERENCE = 20_000  # messages of the reused-connection smtplib loop and of smtp-source
CLOCK = "2026-11-25T12:00:00Z"
HOST = "127.0.0.1"
SECRET = "bench-deliver-secret"  # PUBLISHER_SECRET of every run, and the key of the in-process rendering
SINK_START_SECONDS = 5.0
SINK_SETTLE_SECONDS = 5.0  # smtp-sink writes its counter after the reply; wait this long for it to catch up
SINK_COUNTER = re.compile(rb"mesg=(\d+)")
IMPORTED = re.compile(r"^(\d+) added, (\d+) duplicates, (\d+) invalid$", re.MULTILINE)
PUBLISHED = re.compile(r"^\d+ articles read, \d+ published.*; digest (\S+);.*$", re.MULTILINE)
DELIVERED = re.compile(r"^delivery \(SMTP\): (\d+) sent, (\d+) failed, (\d+) bounced, (\d+) cancelled; ([\d.]+) s$",
                       re.MULTILINE)
CONFIG = """\
[site]
title = "Publisher benchmark"
url = "https://bench.example.com/"
timezone = "UTC"

[email]
from = "Publisher Bench <news@bench.example.com>"
transport = "smtp"
rate = 0.0

[email.smtp]
host = "{host}"
port = {port}
security = "none"
"""

# Targets
MIN_RATE = 1_000.0  # messages per second of the whole `publisher send`
SHARE_OF_SMTP_SOURCE = 0.5  # publisher's rate at least this share of smtp-source's, measured in the same run
MEMORY_GROWTH = 0.20  # peak memory of the largest size at most this much above the smallest


class BenchError(Exception):
    """A run that failed, printed something unexpected, or lost messages."""


@dataclass(frozen=True)
class SizeResult:
    size: int
    import_seconds: float
    send_seconds: float
    send_rss_mb: float
    send_summary: str
    render_seconds: float
    message_bytes: float  # mean size of a rendered message


@dataclass(frozen=True)
class Reference:
    name: str
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


# --- tools ----------------------------------------------------------------------------------------------------------

def postfix_tool(name: str, given: Path | None) -> Path:
    """smtp-sink / smtp-source: the path given, else on PATH, else in /usr/sbin; a clear exit when missing."""
    candidates = [given] if given else [Path(p) for p in (shutil.which(name), f"/usr/sbin/{name}") if p]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    where = str(given) if given else f"PATH or /usr/sbin/{name}"
    sys.exit(f"error: {name} not found in {where}; it comes with Debian's postfix package: "
             f"DEBIAN_FRONTEND=noninteractive apt-get install -y postfix (the mail system need not run)")


def bench_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PUBLISHER_SMTP_PASSWORD"}
    env["PUBLISHER_SECRET"] = SECRET
    return env


def checked(result: Run, what: str, pattern: re.Pattern[str]) -> re.Match[str]:
    """The expected line of a successful run; BenchError if it failed or printed none."""
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-10:])
        raise BenchError(f"{what} exited {result.returncode}:\n{tail}")
    match = pattern.search(result.stdout)
    if not match:
        raise BenchError(f"{what} printed no line like {pattern.pattern!r}; stdout was:\n{result.stdout.strip()}")
    return match


# --- the sink -------------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class Sink:
    """smtp-sink on 127.0.0.1 in the background, counting accepted messages (-c) into a file."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.out_path = workdir / "smtp-sink.out"
        self.err_path = workdir / "smtp-sink.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []

    def start(self) -> None:
        user = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses to run as root without -u
        cmd = [str(self.binary), *user, "-c", f"{HOST}:{self.port}", "1000"]
        out, err = self.out_path.open("wb"), self.err_path.open("wb")
        self._files = [out, err]
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = time.monotonic() + SINK_START_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"smtp-sink exited {self.proc.returncode} at start ({' '.join(cmd)}): "
                                 f"{self._stderr() or 'no message'}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1.0):
                    return
            except OSError as e:
                if time.monotonic() > deadline:
                    raise BenchError(f"smtp-sink did not accept connections on {HOST}:{self.port} within "
                                     f"{SINK_START_SECONDS:g} s ({e}); stderr: {self._stderr() or 'empty'}") from e
                time.sleep(0.05)

    def _stderr(self) -> str:
        try:
            return " ".join(self.err_path.read_text("utf-8", "replace").split())
        except OSError:
            return ""

    def count(self) -> int:
        """Messages accepted so far: the last `mesg=N` of smtp-sink's running counter."""
        found = SINK_COUNTER.findall(self.out_path.read_bytes())
        return int(found[-1]) if found else 0

    def expect(self, before: int, messages: int, what: str) -> None:
        """BenchError unless smtp-sink counted `messages` more than `before` (it may lag a moment)."""
        deadline = time.monotonic() + SINK_SETTLE_SECONDS
        while (got := self.count() - before) < messages and time.monotonic() < deadline:
            time.sleep(0.05)
        if got != messages:
            raise BenchError(f"{what}: smtp-sink counted {got:,} messages, expected {messages:,}")
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"smtp-sink died during {what}: {self._stderr()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in self._files:
            f.close()


@contextmanager
def running_sink(binary: Path, workdir: Path) -> Iterator[Sink]:
    sink = Sink(binary, workdir)
    try:
        sink.start()
        yield sink
    finally:
        sink.stop()


# --- one size -------------------------------------------------------------------------------------------------------

def write_subscribers(path: Path, size: int) -> None:
    """`size` distinct subscribers; every 10th name is not ASCII (RFC 2047 in the To header)."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name"])
        for i in range(size):
            name = f"Zoë Müller {i}" if i % 10 == 0 else f"Reader Number {i}"
            writer.writerow([f"reader{i:07d}@subscribers.example.org", name])


def build_site(root: Path, port: int) -> Path:
    """publisher.toml and the repo's top-level articles; returns the config path."""
    config = root / "publisher.toml"
    config.write_text(CONFIG.format(host=HOST, port=port), encoding="utf-8")
    articles = root / "articles"
    articles.mkdir()
    copied = 0
    for source in sorted(ARTICLES.iterdir()):
        if source.is_file() and source.suffix in (".txt", ".md") and not source.name.startswith("."):
            shutil.copyfile(source, articles / source.name)
            copied += 1
    if not copied:
        raise BenchError(f"no .txt or .md articles in {ARTICLES}")
    return config


@dataclass(frozen=True)
class Digest:
    id: str
    queued: int
    subject: str
    html: str
    text: str


def load_digest(config: Path) -> Digest:
    """The digest `publish --no-send` recorded, read from the site's state (nothing written)."""
    from publisher.config import load_settings
    from publisher.deliver.journal import Journal
    from publisher.store import open_store

    settings = load_settings(config, config.parent)
    with open_store(settings.paths.state, write=False) as store:
        journal = Journal(store)
        unfinished = journal.unfinished()
        if len(unfinished) != 1:
            raise BenchError(f"expected one digest waiting for delivery, found {unfinished}")
        counts = dict(journal.status())[unfinished[0]]
        subject, html, text = store.digest_message(unfinished[0])
    return Digest(unfinished[0], counts["queued"], subject, html, text)


def render_messages(config: Path, digest: Digest, size: int) -> tuple[float, float, bytes]:
    """Build `size` messages in-process as Sender does (token, URL, render), nothing sent:
    (seconds, mean bytes per message, the first message)."""
    from publisher.config import load_settings
    from publisher.deliver.message import MessageTemplate
    from publisher.deliver.tokens import list_id, make_token, unsubscribe_url

    settings = load_settings(config, config.parent)
    key = SECRET.encode("utf-8")
    lid = list_id(settings.site.url)
    site_url = settings.site.url
    readers = [(uuid.uuid4().hex, f"Zoë Müller {i}" if i % 10 == 0 else f"Reader Number {i}",
                f"reader{i:07d}@subscribers.example.org") for i in range(size)]
    started = time.perf_counter()
    template = MessageTemplate(settings, digest.id, digest.subject, digest.html, digest.text,
                               datetime.fromisoformat(CLOCK.replace("Z", "+00:00")).astimezone(UTC))
    total = 0
    first = b""
    for sid, name, address in readers:
        url = unsubscribe_url(site_url, make_token(key, lid, sid))
        data = template.render(subscriber_id=sid, name=name, address=address, unsubscribe_url=url)
        total += len(data)
        if not first:
            first = data
    seconds = time.perf_counter() - started
    return seconds, total / size, first


def bench_size(size: int, cli: Sequence[str], sink: Sink) -> tuple[SizeResult, bytes]:
    root = Path(tempfile.mkdtemp(prefix=f"publisher-bench-deliver-{size}-"))
    try:
        config = build_site(root, sink.port)
        cfg = ["--config", str(config)]
        people = root / "subscribers.csv"
        write_subscribers(people, size)

        imported = run([*cli, "subscribers", "import", str(people), *cfg], root, bench_env())
        added = checked(imported, f"import of {size:,} subscribers", IMPORTED)
        if int(added.group(1)) != size:
            raise BenchError(f"import of {size:,} subscribers: {added.group(0)}")
        print(f"  setup  {size:>7,}: import {imported.seconds:6.2f} s, {imported.max_rss_mb:6.1f} MB | "
              f"{added.group(0)}")

        published = run([*cli, "publish", *cfg, "--clock", CLOCK, "--no-send"], root, bench_env())
        checked(published, "publish --no-send", PUBLISHED)
        digest = load_digest(config)
        if digest.queued != size:
            raise BenchError(f"digest {digest.id} queued {digest.queued:,} messages, expected {size:,}")

        before = sink.count()
        sent = run([*cli, "send", *cfg, "--clock", CLOCK], root, bench_env())
        delivered = checked(sent, f"publisher send to {size:,}", DELIVERED)
        if int(delivered.group(1)) != size:
            raise BenchError(f"publisher send to {size:,}: {delivered.group(0)}")
        sink.expect(before, size, f"publisher send to {size:,}")
        print(f"  send   {size:>7,}: {sent.seconds:6.2f} s, {size / sent.seconds:7,.0f} msg/s, "
              f"{sent.max_rss_mb:6.1f} MB | {delivered.group(0)}")

        render_seconds, mean_bytes, sample = render_messages(config, digest, size)
        print(f"  render {size:>7,}: {render_seconds:6.2f} s, {size / render_seconds:7,.0f} msg/s in-process, "
              f"{mean_bytes / 1024:.1f} KB a message")
        return SizeResult(size, imported.seconds, sent.seconds, sent.max_rss_mb, delivered.group(0),
                          render_seconds, mean_bytes), sample
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- references -----------------------------------------------------------------------------------------------------

SENDER = "news@bench.example.com"


def _recipient(i: int) -> str:
    return f"reader{i:07d}@subscribers.example.org"


def naive_smtplib(sink: Sink, message: bytes, count: int) -> Reference:
    """A new connection (connect, EHLO, MAIL, RCPT, DATA, QUIT) for every message."""
    before = sink.count()
    started = time.perf_counter()
    for i in range(count):
        with smtplib.SMTP(HOST, sink.port, timeout=30) as smtp:
            smtp.sendmail(SENDER, [_recipient(i)], message)
    seconds = time.perf_counter() - started
    sink.expect(before, count, "smtplib, a connection per message")
    return Reference("smtplib, new connection per message", count, seconds)


def reused_smtplib(sink: Sink, message: bytes, count: int) -> Reference:
    """One connection, one sendmail per message."""
    before = sink.count()
    started = time.perf_counter()
    with smtplib.SMTP(HOST, sink.port, timeout=30) as smtp:
        for i in range(count):
            smtp.sendmail(SENDER, [_recipient(i)], message)
    seconds = time.perf_counter() - started
    sink.expect(before, count, "smtplib, one reused connection")
    return Reference("smtplib, one reused connection", count, seconds)


def smtp_source(binary: Path, sink: Sink, message: bytes, count: int, workdir: Path) -> Reference:
    """Postfix's smtp-source, one session reused (-d -s 1), sending the same message from a file (-F: it
    appends CRLF to every line and dot-stuffs, so the file has LF line ends)."""
    path = workdir / "message.txt"
    path.write_bytes(message.replace(b"\r\n", b"\n"))
    cmd = [str(binary), "-d", "-s", "1", "-m", str(count), "-F", str(path), "-f", SENDER, "-t", _recipient(0),
           f"{HOST}:{sink.port}"]
    before = sink.count()
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchError(f"smtp-source exited {result.returncode}: "
                         f"{result.stderr.decode('utf-8', 'replace').strip()}")
    sink.expect(before, count, "smtp-source")
    return Reference("smtp-source -d -s 1 (one session)", count, seconds)


# --- the table ------------------------------------------------------------------------------------------------------

def rows(results: Sequence[SizeResult], refs: Sequence[Reference]) -> list[Row]:
    source_rate = next(r.rate for r in refs if r.name.startswith("smtp-source"))
    share_target = SHARE_OF_SMTP_SOURCE * source_rate
    table: list[Row] = []
    for r in results:
        rate = r.size / r.send_seconds
        table.append(Row(f"publisher send {r.size:,} ({r.send_seconds:.2f} s, whole process)", f"{rate:,.0f} msg/s",
                         f">= {MIN_RATE:,.0f} msg/s", rate >= MIN_RATE))
        table.append(Row(f"publisher send {r.size:,} vs smtp-source", f"{rate / source_rate:.0%}",
                         f">= {SHARE_OF_SMTP_SOURCE:.0%} of {source_rate:,.0f} = {share_target:,.0f} msg/s",
                         rate >= share_target))
    smallest = min(results, key=lambda r: r.size)
    for r in results:
        if r is smallest:
            table.append(Row(f"peak memory, publisher send {r.size:,}", f"{r.send_rss_mb:.0f} MB", "-", None))
        else:
            limit = smallest.send_rss_mb * (1 + MEMORY_GROWTH)
            table.append(Row(f"peak memory, publisher send {r.size:,}", f"{r.send_rss_mb:.0f} MB",
                             f"<= {limit:.0f} MB ({smallest.size:,} + {MEMORY_GROWTH:.0%})",
                             r.send_rss_mb <= limit))
    for r in results:
        table.append(Row(f"build messages only {r.size:,} (in-process, {r.render_seconds:.2f} s)",
                         f"{r.size / r.render_seconds:,.0f} msg/s", "-", None))
    for r in results:
        table.append(Row(f"message size ({r.size:,})", f"{r.message_bytes / 1024:.1f} KB", "-", None))
    for r in results:
        table.append(Row(f"setup: import {r.size:,} subscribers (not timed above)", f"{r.import_seconds:.2f} s",
                         "-", None))
    for ref in refs:
        table.append(Row(f"reference: {ref.name}, {ref.messages:,} msgs ({ref.seconds:.2f} s)",
                         f"{ref.rate:,.0f} msg/s", "-", None))
    return table


def count(text: str) -> int:
    values = number_list(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give one number")
    return values[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=number_list, default=list(DEFAULT_SIZES),
                        help="comma-separated subscriber counts [default: 10000,100000]")
    parser.add_argument("--naive", type=count, default=DEFAULT_NAIVE, metavar="N",
                        help=f"messages of the connection-per-message smtplib loop [default: {DEFAULT_NAIVE}]")
    parser.add_argument("--reference", type=count, default=DEFAULT_REFERENCE, metavar="N",
                        help="messages of the reused-connection smtplib loop and of smtp-source "
                             f"[default: {DEFAULT_REFERENCE}]")
    parser.add_argument("--smtp-sink", type=Path, help="path of smtp-sink [default: PATH, else /usr/sbin]")
    parser.add_argument("--smtp-source", type=Path, help="path of smtp-source [default: PATH, else /usr/sbin]")
    args = parser.parse_args(argv)
    sink_binary = postfix_tool("smtp-sink", args.smtp_sink)
    source_binary = postfix_tool("smtp-source", args.smtp_source)
    cli = cli_command()
    sizes: list[int] = sorted(set(args.sizes))

    workdir = Path(tempfile.mkdtemp(prefix="publisher-bench-deliver-"))
    try:
        with running_sink(sink_binary, workdir) as sink:
            print(f"delivery benchmark: {' '.join(cli)} | {sink_binary} on {HOST}:{sink.port} | "
                  f"sizes {', '.join(f'{s:,}' for s in sizes)} | clock {CLOCK}")
            print("times: wall clock of each CLI subprocess, spawn to exit; peak memory: ru_maxrss of the send "
                  "child, from os.wait4() on that child alone; every count checked against smtp-sink's counter")
            results: list[SizeResult] = []
            sample = b""
            for size in sizes:
                result, first = bench_size(size, cli, sink)
                results.append(result)
                sample = sample or first
            print(f"  references with the same {len(sample) / 1024:.1f} KB message:")
            refs = [naive_smtplib(sink, sample, args.naive), reused_smtplib(sink, sample, args.reference),
                    smtp_source(source_binary, sink, sample, args.reference, workdir)]
            for ref in refs:
                print(f"  {ref.name:<38} {ref.messages:>7,}: {ref.seconds:6.2f} s, {ref.rate:7,.0f} msg/s")
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (OSError, smtplib.SMTPException) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(rows(results, refs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
