"""Sticky variant assignment, shared by the deployments service and the gateway's serving cache.

`bucket = int(sha256_hex(f"{seed}.{session_id}")[:15], 16) / (16**15 - 1)` over UTF-8 bytes; the first
variant (in stored order) whose cumulative weight / 100 exceeds the bucket wins. Any client can compute
the same answer; docs/deployments.md publishes test vectors.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

SCALE = 16**15 - 1


def bucket(seed: str, session_id: str) -> float:
    digest = hashlib.sha256(f"{seed}.{session_id}".encode()).hexdigest()
    return int(digest[:15], 16) / SCALE


def pick(weights: Sequence[float], point: float) -> int:
    """Index of the variant that owns `point` in [0, 1]."""
    cumulative = 0.0
    for index, weight in enumerate(weights):
        cumulative += weight
        if cumulative / 100 > point:
            return index
    # point == 1.0 exactly, or float rounding left the total a hair under 100: the last variant with
    # traffic owns the top of the range.
    return max(i for i, w in enumerate(weights) if w > 0)


def assign(*, seed: str, weights: Sequence[float], session_id: str | None) -> tuple[int, bool]:
    """(variant index, sticky). Without a session id the pick is random and not sticky."""
    if session_id:
        return pick(weights, bucket(seed, session_id)), True
    return pick(weights, random.random()), False
