"""The default gate: pure rules over a version's evaluations and the prompt's policy. No I/O here.

Only the latest evaluation per harness counts, so a passing re-run supersedes an old failure. The
answer lists every reason the gate fails, not just the first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pvc.core.errors import ValidationFailed

FINISHED = ("passed", "failed", "error")
STATUSES = ("passed", "failed", "error", "pending", "running")
HARNESS_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
DEFAULT_POLICY: dict[str, Any] = {
    "minScore": 0.8,
    "requiredHarnesses": [],
    "maxAgeHours": None,
    "metricThresholds": {},
}


@dataclass(frozen=True)
class Result:
    """What the gate needs to know about one evaluation."""

    harness: str
    status: str
    score: float | None
    metrics: Mapping[str, Any]
    created_at: datetime
    completed_at: datetime | None
    # Tie-break for two results of one harness created in the same instant.
    key: str = ""


@dataclass(frozen=True)
class GateAnswer:
    can_promote: bool
    reasons: list[str]
    latest: list[Result] = field(default_factory=list)


def _invalid(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{name} {message}", details={"fields": {name: message}})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_policy(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A complete policy from a (possibly partial) document; omitted keys take the defaults."""
    unknown = set(raw) - set(DEFAULT_POLICY)
    if unknown:
        raise _invalid(sorted(unknown)[0], "is not a policy field")
    policy = {**DEFAULT_POLICY, **raw}
    if not _number(policy["minScore"]) or not 0 <= policy["minScore"] <= 1:
        raise _invalid("minScore", "must be a number between 0 and 1")
    required = policy["requiredHarnesses"]
    if not isinstance(required, list) or not all(isinstance(h, str) and h for h in required):
        raise _invalid("requiredHarnesses", "must be a list of harness names")
    if len(required) > 50:
        raise _invalid("requiredHarnesses", "must have at most 50 names")
    policy["requiredHarnesses"] = sorted(set(required))
    age = policy["maxAgeHours"]
    if age is not None and (not _number(age) or age <= 0):
        raise _invalid("maxAgeHours", "must be a positive number or null")
    thresholds = policy["metricThresholds"]
    if not isinstance(thresholds, dict) or len(thresholds) > 50:
        raise _invalid("metricThresholds", "must be an object of at most 50 metrics")
    for name, bounds in thresholds.items():
        where = f"metricThresholds.{name}"
        if not name or not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
            raise _invalid(where, "must be an object with min and/or max")
        if not all(_number(v) for v in bounds.values()):
            raise _invalid(where, "min and max must be numbers")
        if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            raise _invalid(where, "min must not exceed max")
    return policy


def latest_per_harness(results: Iterable[Result]) -> list[Result]:
    latest: dict[str, Result] = {}
    for result in results:
        current = latest.get(result.harness)
        if current is None or (result.created_at, result.key) > (current.created_at, current.key):
            latest[result.harness] = result
    return [latest[name] for name in sorted(latest)]


def _fmt(value: float) -> str:
    return f"{value:g}"


def evaluate(*, policy: Mapping[str, Any], results: Iterable[Result], now: datetime) -> GateAnswer:
    latest = latest_per_harness(results)
    reasons: list[str] = []
    if not latest:
        reasons.append("no evaluations recorded for this version")
    for result in latest:
        if result.status == "failed":
            reasons.append(f"harness '{result.harness}' failed")
        elif result.status == "error":
            reasons.append(f"harness '{result.harness}' errored")
        elif result.status in ("pending", "running"):
            reasons.append(f"harness '{result.harness}' is still {result.status}")
    present = {r.harness for r in latest}
    for name in policy["requiredHarnesses"]:
        if name not in present:
            reasons.append(f"required harness '{name}' has no evaluation")

    finished = [r for r in latest if r.status in FINISHED]
    unscored = [r.harness for r in finished if r.status == "passed" and r.score is None]
    for name in unscored:
        # A missing score never counts as a pass (the original treated null as good enough).
        reasons.append(f"harness '{name}' reported no score")
    scores = [r.score for r in finished if r.score is not None]
    if scores:
        mean = sum(scores) / len(scores)
        if mean < policy["minScore"]:
            reasons.append(f"mean score {_fmt(round(mean, 6))} is below minScore {_fmt(policy['minScore'])}")

    for metric, bounds in sorted(policy["metricThresholds"].items()):
        reported = [(r.harness, r.metrics[metric]) for r in finished if _number(r.metrics.get(metric))]
        if not reported:
            reasons.append(f"metric '{metric}' was not reported")
        for harness, value in reported:
            if "min" in bounds and value < bounds["min"]:
                reasons.append(
                    f"metric '{metric}' = {_fmt(value)} from '{harness}' is below min {_fmt(bounds['min'])}"
                )
            if "max" in bounds and value > bounds["max"]:
                reasons.append(
                    f"metric '{metric}' = {_fmt(value)} from '{harness}' is above max {_fmt(bounds['max'])}"
                )

    if policy["maxAgeHours"] is not None:
        oldest_allowed = now - timedelta(hours=policy["maxAgeHours"])
        for result in latest:
            if (result.completed_at or result.created_at) < oldest_allowed:
                reasons.append(
                    f"harness '{result.harness}' result is older than {_fmt(policy['maxAgeHours'])} hours"
                )
    return GateAnswer(can_promote=not reasons, reasons=reasons, latest=latest)
