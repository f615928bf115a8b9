"""A token bucket per API token, in memory: each API replica limits on its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`per_second` requests a second on average, and up to `burst` at once after a quiet spell."""

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self.burst, self.clock = per_second, burst, clock
        self.buckets: dict[str, Bucket] = {}  # one per configured token that was used: a bounded number
        self.lock = threading.Lock()  # sync routes and their dependencies run in a thread pool

    def wait_seconds(self, key: str) -> float:
        """Take one request from `key`'s bucket: 0 if allowed, else how long until one would be."""
        with self.lock:
            now = self.clock()
            bucket = self.buckets.setdefault(key, Bucket(float(self.burst), now))
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_second)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.per_second
