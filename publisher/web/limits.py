"""Rate limits in memory: a sliding window of recent attempts per key (a client address, a recipient).

In memory means per process: one `publisher serve` process keeps one count; several processes (or a
restart) each count on their own. Memory is bounded: at most `limit` times per key, and when there
are more than MAX_KEYS keys the idle ones are dropped, then the oldest.
"""

from __future__ import annotations

import ipaddress
from collections import deque

MAX_KEYS = 50_000


class RateLimiter:
    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float) -> float:
        """Count an attempt for `key` at `now` (seconds): 0 when allowed, else the seconds to wait
        (a refused attempt is not counted)."""
        times = self.hits.get(key)
        if times is None:
            self._make_room(now)
            times = self.hits[key] = deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return max(times[0] + self.window - now, 1.0)
        times.append(now)
        return 0.0

    def _make_room(self, now: float) -> None:
        if len(self.hits) < MAX_KEYS:
            return
        for key in [k for k, times in self.hits.items() if not times or times[-1] <= now - self.window]:
            del self.hits[key]
        while len(self.hits) >= MAX_KEYS:
            del self.hits[next(iter(self.hits))]


def client_key(host: str | None) -> str:
    """The client's address as a rate-limit key; an IPv6 client counts by its /64 network (one
    household or server usually gets a whole /64)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        return str(mapped) if mapped else str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
