"""Sticky bucketing: the published test vectors, distribution, and movement on re-weighting."""

from __future__ import annotations

import pytest

from pvc.core.bucketing import bucket, pick

# The vectors of docs/deployments.md: (seed, session id, weights, first 15 hex digits, variant index).
VECTORS = [
    ("3f2a9c1e5b7d4680", "user-1", [50, 50], "42410b6ae845d7d", 0),
    ("3f2a9c1e5b7d4680", "user-3", [10, 90], "0b8ee143af573a3", 0),
    ("a1b2c3d4e5f60718", "alice", [20, 30, 50], "d6f529a19296609", 2),
    ("a1b2c3d4e5f60718", "bob", [20, 30, 50], "5ad23e21d496667", 1),
    ("a1b2c3d4e5f60718", "carol", [20, 30, 50], "a66cd3340d60e04", 2),
    ("a1b2c3d4e5f60718", "dave", [60, 40], "4b648b57cf1d392", 0),
    ("00000000deadbeef", "session-42", [33.3, 33.3, 33.4], "c1197d379d4e642", 2),
    ("00000000deadbeef", "Zoë 🚀", [0, 100], "4da6f0dd943bdb5", 1),
]


@pytest.mark.parametrize(("seed", "session", "weights", "digits", "index"), VECTORS)
def test_published_vectors(seed: str, session: str, weights: list[float], digits: str, index: int) -> None:
    assert bucket(seed, session) == int(digits, 16) / (16**15 - 1)
    assert pick(weights, bucket(seed, session)) == index


def test_edges() -> None:
    assert pick([50, 50], 0.0) == 0
    assert pick([50, 50], 0.5) == 1  # the boundary belongs to the next variant ("exceeds")
    assert pick([50, 50, 0], 1.0) == 1  # the very top goes to the last variant with traffic
    assert pick([33.3, 33.3, 33.4], 0.9999999999) == 2


@pytest.mark.parametrize("weights", [[50, 50], [10, 90], [20, 30, 50], [5, 5, 5, 85]])
def test_distribution_follows_the_weights(weights: list[float]) -> None:
    sessions = 20_000
    counts = [0] * len(weights)
    for i in range(sessions):
        counts[pick(weights, bucket("seed-dist", f"s{i}"))] += 1
    for count, weight in zip(counts, weights, strict=True):
        # ±1.5 percentage points: over 4 standard deviations at n = 20,000.
        assert abs(count / sessions - weight / 100) < 0.015, (counts, weights)


def test_reweighting_moves_about_the_shifted_share() -> None:
    sessions = [f"user-{i}" for i in range(20_000)]
    before = [pick([50, 50], bucket("seed-move", s)) for s in sessions]
    after = [pick([60, 40], bucket("seed-move", s)) for s in sessions]
    moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert all(move == (1, 0) for move in moved)
    assert abs(len(moved) / len(sessions) - 0.10) < 0.01
