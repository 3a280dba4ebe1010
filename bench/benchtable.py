"""What the benchmarks share: running the CLI with its time and peak memory, the table of figures with
targets, and a list-of-numbers argument."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Row:
    metric: str
    value: str
    target: str
    ok: bool | None  # None: no target for this figure


def print_table(table: Sequence[Row]) -> None:
    header = Row("figure", "measured", "target", None)
    widths = [max(len(getattr(r, name)) for r in [header, *table]) for name in ("metric", "value", "target")]
    for r in [header, *table]:
        verdict = "" if r.ok is None else ("ok" if r.ok else "MISSED")
        if r is header:
            verdict = "verdict"
        print(f"{r.metric:<{widths[0]}}  {r.value:>{widths[1]}}  {r.target:<{widths[2]}}  {verdict}".rstrip())


def number_list(text: str) -> list[int]:
    """'2225,22250' -> [2225, 22250] (for argparse)."""
    try:
        numbers = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from e
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError("numbers must be 1 or more")
    return numbers


@dataclass(frozen=True)
class Run:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float


def cli_command() -> list[str]:
    """The installed `publisher` script next to this interpreter, else `python -m publisher`."""
    script = Path(sys.executable).parent / "publisher"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "publisher"]


def _rss_mb(max_rss: int) -> float:
    """ru_maxrss is in kilobytes on Linux and in bytes on macOS."""
    return max_rss / (1024 * 1024) if sys.platform == "darwin" else max_rss / 1024


@dataclass
class Child:
    """A CLI subprocess started by `spawn`, its output going to temporary files until `reap`."""

    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    started: float


def installed_env() -> dict[str, str]:
    """This environment as an installed publisher runs in: Python writes and reuses bytecode (pip
    compiles it at install), even where PYTHONDONTWRITEBYTECODE is set (it would recompile every
    module on every run: about 0.2 s of a no-op publish and of --help)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def spawn(cmd: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> Child:
    """Start `cmd` in the background (several may run at once; `reap` each), by default in
    `installed_env()`."""
    env = installed_env() if env is None else env
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 (closed by reap)
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
    return Child(proc, out, err, started)


def reap(child: Child) -> Run:
    """Wait for `child`; wall time from its spawn to its exit, and its own peak RSS (os.wait4)."""
    try:
        _, status, usage = os.wait4(child.proc.pid, 0)
        seconds = time.perf_counter() - child.started
        child.proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; tell Popen so it does not wait
        child.out.seek(0)
        child.err.seek(0)
        return Run(seconds, child.proc.returncode, child.out.read().decode("utf-8", "replace"),
                   child.err.read().decode("utf-8", "replace"), _rss_mb(usage.ru_maxrss))
    finally:
        child.out.close()
        child.err.close()


def run(cmd: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run `cmd` to completion; wall time from spawn to exit, and the child's own peak RSS (os.wait4)."""
    return reap(spawn(cmd, cwd, env))
