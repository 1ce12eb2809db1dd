"""The gate rules and the signature scheme, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pvc.core.errors import Unauthenticated, ValidationFailed
from pvc.evals import gate, signing

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def result(
    harness: str = "q", status: str = "passed", score: float | None = 0.9, age: float = 0, **metrics: float
) -> gate.Result:
    at = NOW - timedelta(seconds=age)
    return gate.Result(
        harness=harness, status=status, score=score, metrics=metrics, created_at=at, completed_at=at
    )


def policy(**overrides: object) -> dict[str, object]:
    return gate.validate_policy(overrides)


def test_latest_per_harness_wins() -> None:
    answer = gate.evaluate(
        policy=policy(), results=[result(status="failed", age=10), result(status="passed", age=5)], now=NOW
    )
    assert answer.can_promote
    assert [r.status for r in answer.latest] == ["passed"]


def test_reasons_accumulate() -> None:
    answer = gate.evaluate(
        policy=policy(
            minScore=0.95, requiredHarnesses=["s"], maxAgeHours=1, metricThresholds={"c": {"max": 1}}
        ),
        results=[result("a", "failed", 0.5, age=7200, c=2), result("b", "pending", None)],
        now=NOW,
    )
    assert answer.reasons == [
        "harness 'a' failed",
        "harness 'b' is still pending",
        "required harness 's' has no evaluation",
        "mean score 0.5 is below minScore 0.95",
        "metric 'c' = 2 from 'a' is above max 1",
        "harness 'a' result is older than 1 hours",
    ]


def test_empty_and_unscored() -> None:
    assert gate.evaluate(policy=policy(), results=[], now=NOW).reasons == [
        "no evaluations recorded for this version"
    ]
    assert gate.evaluate(policy=policy(), results=[result(score=None)], now=NOW).reasons == [
        "harness 'q' reported no score"
    ]


@pytest.mark.parametrize(
    "raw",
    [
        {"minScore": 1.1},
        {"minScore": True},
        {"requiredHarnesses": [1]},
        {"maxAgeHours": 0},
        {"metricThresholds": {"m": {}}},
        {"metricThresholds": {"m": {"min": 3, "max": 1}}},
        {"nope": 1},
    ],
)
def test_bad_policies(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationFailed):
        gate.validate_policy(raw)


def test_signature_round_trip_and_rejections() -> None:
    secret = signing.new_secret()
    assert signing.valid_secret(secret)
    headers = signing.headers(secret=secret, msg_id="msg_1", body=b"{}", timestamp=1_000)
    signing.verify(
        secret=secret,
        msg_id="msg_1",
        timestamp="1000",
        signature=f"v1,bogus {headers['webhook-signature']}",
        body=b"{}",
        tolerance=300,
        now=1_100,
    )
    for body, stamp, now in ((b"{ }", "1000", 1_100), (b"{}", "1000", 2_000), (b"{}", "x", 1_000)):
        with pytest.raises(Unauthenticated):
            signing.verify(
                secret=secret,
                msg_id="msg_1",
                timestamp=stamp,
                signature=headers["webhook-signature"],
                body=body,
                tolerance=300,
                now=now,
            )
