"""The retry schedule of DESIGN.md: after each failed attempt, the delay before the next one."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

# Delays after the 1st, 2nd, ... failed attempt; after the last one the delivery is dead (8 attempts).
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.10
# A receiver's Retry-After is honoured up to this long.
MAX_RETRY_AFTER = timedelta(hours=24)


def next_delay(failed_attempts: int, *, rand: Callable[[], float] = random.random) -> timedelta | None:
    """Delay after `failed_attempts` consecutive failures (1-based), ±10% jitter; None = give up."""
    if not 1 <= failed_attempts <= len(RETRY_DELAYS):
        return None
    base = RETRY_DELAYS[failed_attempts - 1]
    return base * (1 + JITTER * (2 * rand() - 1))


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """`Retry-After` as seconds or an HTTP date, clamped to [0, 24 h]; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            delay = parsedate_to_datetime(value) - now
        except (TypeError, ValueError):
            return None
    return max(timedelta(0), min(delay, MAX_RETRY_AFTER))
