"""A real, throwaway PostgreSQL server for the tests: Debian's `postgresql` package (installed by
.ci/run), a cluster made with initdb in a temporary folder (as the `postgres` user when the tests run as
root, since initdb refuses root), fsync off, listening only on a Unix socket in that folder. Each test
gets a database of its own, cloned from an empty template (CREATE DATABASE ... TEMPLATE, about 0.1 s).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
TEMPLATE = "publisher_template"


def _binary(name: str) -> str:
    for folder in BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package (.ci/run does)")
    return found


class PgServer:
    """initdb + pg_ctl on a temporary folder; `url(db)` gives a SQLAlchemy URL on its Unix socket."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="publisher-pg-"))
        self.data, self.socket = self.root / "data", self.root / "socket"
        self.socket.mkdir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket, "postgres", "postgres")
        self.names = itertools.count(1)

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self.start()
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")

    def start(self) -> None:
        options = (f"-k {self.socket} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=300")
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(dbname="postgres", user="postgres", host=str(self.socket), autocommit=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket}"

    def new_database(self) -> str:
        """A new empty database cloned from the template; its SQLAlchemy URL."""
        name = f"test_{os.getpid()}_{next(self.names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
