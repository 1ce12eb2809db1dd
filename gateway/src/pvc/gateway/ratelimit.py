"""Token buckets per API key (and per client IP for requests without a valid key), in process.

Buckets live on each gateway replica, so with N replicas behind a balancer a key can reach up to N times
its limit; that is the documented trade-off for keeping the hot path free of network calls.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

# Forget buckets idle this long once there are many (a full bucket carries no information).
_IDLE_SECONDS = 120.0
_PRUNE_ABOVE = 10_000


@dataclass(slots=True)
class Bucket:
    rate: float
    burst: float
    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the bucket is full again (RateLimit-Reset) and until one token is back (Retry-After).
    reset: int
    retry_after: int


class RateLimiter:
    def __init__(self, *, per_second: float, burst: float) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, Bucket] = {}

    def limits_for(self, custom_per_second: float | None) -> tuple[float, float]:
        """(rate, burst); a key's own rate keeps the default ratio of burst to rate (10 s by default)."""
        if custom_per_second is None:
            return self.per_second, self.burst
        if custom_per_second <= 0:
            return 0.0, 0.0
        ratio = self.burst / self.per_second if self.per_second > 0 else 1.0
        return custom_per_second, max(1.0, custom_per_second * ratio)

    def take(self, name: str, *, rate: float, burst: float) -> Decision | None:
        """Take one token; None when unlimited (rate 0)."""
        if rate <= 0:
            return None
        now = time.monotonic()
        bucket = self._buckets.get(name)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            if len(self._buckets) > _PRUNE_ABOVE:
                self._prune(now)
            bucket = self._buckets[name] = Bucket(rate=rate, burst=burst, tokens=burst, updated=now)
        else:
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        return Decision(
            allowed=allowed,
            limit=int(burst),
            remaining=int(bucket.tokens),
            reset=math.ceil((burst - bucket.tokens) / rate),
            retry_after=0 if allowed else max(1, math.ceil((1.0 - bucket.tokens) / rate)),
        )

    def _prune(self, now: float) -> None:
        for name, bucket in list(self._buckets.items()):
            if now - bucket.updated > _IDLE_SECONDS:
                del self._buckets[name]
