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


@contextmanager
def serve(root: Path, port: int | None = None) -> Iterator[str]:
    """`publisher serve` on 127.0.0.1:`port` (default: a free one) until the block ends; its base URL."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}/"
    process = subprocess.Popen([sys.executable, "-m", "publisher", "serve", "--port", str(port)], cwd=root,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + "subscribe")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=5)
