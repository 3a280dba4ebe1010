"""`publisher serve` as a real subprocess on 127.0.0.1, for the tests that talk HTTP to it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.mailserver import free_port


def wait_until_up(process: subprocess.Popen[str], url: str) -> httpx.Response:
    """The first answer of `publisher serve` (started as `process`) to `url`, within 20 s."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url)
        except httpx.TransportError:
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)


@contextmanager
def serve(root: Path, port: int | None = None) -> Iterator[str]:
    """`publisher serve` on 127.0.0.1:`port` (default: a free one) until the block ends; its base URL."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}/"
    process = subprocess.Popen([sys.executable, "-m", "publisher", "serve", "--port", str(port)], cwd=root,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(process, base + "subscribe")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=5)
