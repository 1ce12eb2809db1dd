"""Metrics: ingest validation (all-or-nothing), aggregates, results with Welch's t-test, guardrails."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pvc.devstack import Stack

from .support import ClientFactory, assert_error, unique
from .test_deployments import deploy, prompt_with_versions
from .test_events import collect

INGEST = "/api/v1/metrics/ingest"


def point(version_id: str, value: float, name: str = "latency_ms", **extra: Any) -> dict[str, Any]:
    return {"versionId": version_id, "type": "latency", "name": name, "value": value, **extra}


def percentile_cont(values: list[float], p: float) -> float:
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def metric_count(api: httpx.Client, version_id: str) -> int:
    rows = api.get(f"/api/v1/metrics/versions/{version_id}").json()["data"]
    return sum(r["count"] for r in rows)


def test_ingest_validation_is_all_or_nothing(api: httpx.Client, client_for: ClientFactory) -> None:
    _, (version,) = prompt_with_versions(api, 1)
    good = [point(version["id"], 10.0) for _ in range(5)]
    cases = [
        ([*good[:3], {**good[0], "value": "fast"}], "metrics[3].value"),
        ([*good, {**good[0], "type": "speed"}], "metrics[5].type"),
        ([*good, {**good[0], "type": ["latency"]}], "metrics[5].type"),
        ([{k: v for k, v in good[0].items() if k != "name"}], "metrics[0].name"),
        ([*good, {**good[0], "colour": "red"}], "metrics[5].colour"),
        ([{**good[0], "versionId": "nope"}], "metrics[0].versionId"),
        ([{**good[0], "versionId": 7}], "metrics[0].versionId"),
        ([*good, {**good[0], "sessionId": "a\x00b"}], "metrics[5].sessionId"),
        ([*good, {**good[0], "unit": 5}], "metrics[5].unit"),
        ([*good, {**good[0], "dimensions": {"n": 2**64}}], "metrics[5].dimensions"),
        ([*good, {**good[0], "dimensions": {"nested": {"a": 1}}}], "metrics[5].dimensions"),
        ([*good, "point"], "metrics[5]"),
        ([{**good[0], "timestamp": "yesterday"}], "metrics[0].timestamp"),
        ([{**good[0], "timestamp": "2026-01-01T00:00:00"}], "metrics[0].timestamp"),
        ([], "metrics"),
    ]
    for batch, field in cases:
        error = assert_error(api.post(INGEST, json={"metrics": batch}), 400, "VALIDATION_ERROR")
        assert field in error["details"]["fields"], (field, error)
    assert_error(api.post(INGEST, json={"metrics": [good[0]] * 10_001}), 400, "VALIDATION_ERROR")
    error = assert_error(api.post(INGEST, json={"metrics": good, "extra": 1}), 400, "VALIDATION_ERROR")
    assert "extra" in error["details"]["fields"], error
    # Not JSON, not UTF-8, a lone surrogate, not an object: 400 before anything is looked up.
    for raw in (b"{", b'{"metrics": ["\xff"]}', b'{"metrics": ["\\ud800"]}', b"[]", b"null"):
        sent = api.post(INGEST, content=raw, headers={"content-type": "application/json"})
        assert_error(sent, 400, "VALIDATION_ERROR")
    # Unknown and other projects' versions: 404, and nothing of the batch is stored.
    unknown = "00000000-0000-4000-8000-000000000001"
    error = assert_error(api.post(INGEST, json={"metrics": [*good, point(unknown, 1)]}), 404, "NOT_FOUND")
    assert error["details"]["index"] == 5
    stranger = client_for(scopes=["admin"], project=unique("proj"))
    assert_error(stranger.post(INGEST, json={"metrics": good}), 404, "NOT_FOUND")
    assert_error(stranger.get(f"/api/v1/metrics/versions/{version['id']}"), 404, "NOT_FOUND")
    bad_deployment = [*good, point(version["id"], 1, deploymentId=unknown)]
    assert_error(api.post(INGEST, json={"metrics": bad_deployment}), 404, "NOT_FOUND")
    assert metric_count(api, version["id"]) == 0
    # Scope.
    assert_error(client_for(scopes=["read"]).post(INGEST, json={"metrics": good}), 403, "FORBIDDEN")
    accepted = client_for(scopes=["metrics:write"]).post(INGEST, json={"metrics": good})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"ingested": 5}
    assert metric_count(api, version["id"]) == 5


def test_aggregates_match_numbers_computed_here(api: httpx.Client) -> None:
    prompt_id, (v1, v2) = prompt_with_versions(api, 2)
    values = [float(v) for v in [12, 7, 3, 14, 9, 21, 5, 8, 13, 2, 30, 11, 6]]
    costs = [0.002, 0.004, 0.003]
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    batch = [point(v1["id"], v, sessionId=f"s{i}", dimensions={"region": "eu"}) for i, v in enumerate(values)]
    batch += [
        {"versionId": v1["id"], "type": "cost", "name": "cost_usd", "value": c, "unit": "USD"} for c in costs
    ]
    batch += [point(v1["id"], 1000.0, timestamp=old), point(v2["id"], 42)]
    assert api.post(INGEST, json={"metrics": batch}).status_code == 202
    rows = {r["name"]: r for r in api.get(f"/api/v1/metrics/versions/{v1['id']}").json()["data"]}
    assert set(rows) == {"cost_usd", "latency_ms"}
    everything = [*values, 1000.0]
    latency = rows["latency_ms"]
    assert latency["count"] == len(everything)
    assert latency["type"] == "latency"
    assert math.isclose(latency["sum"], sum(everything))
    assert math.isclose(latency["mean"], statistics.fmean(everything))
    assert (latency["min"], latency["max"]) == (min(everything), max(everything))
    for p in (50, 95, 99):
        assert math.isclose(latency[f"p{p}"], percentile_cont(everything, p / 100)), p
    assert math.isclose(latency["stddev"], statistics.stdev(everything))
    assert rows["cost_usd"]["unit"] == "USD"
    assert math.isclose(rows["cost_usd"]["sum"], sum(costs))
    # A time window leaves the old point out; type and name filter.
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    windowed = api.get(
        f"/api/v1/metrics/versions/{v1['id']}", params={"from": since, "name": "latency_ms"}
    ).json()["data"]
    assert [(r["name"], r["count"], r["max"]) for r in windowed] == [("latency_ms", len(values), max(values))]
    assert [
        r["name"]
        for r in api.get(f"/api/v1/metrics/versions/{v1['id']}", params={"type": "cost"}).json()["data"]
    ] == ["cost_usd"]
    assert_error(
        api.get(f"/api/v1/metrics/versions/{v1['id']}", params={"from": "soon"}), 400, "VALIDATION_ERROR"
    )
    # Per prompt: every version with points, highest first.
    by_version = api.get(f"/api/v1/metrics/prompts/{prompt_id}").json()["data"]
    assert [(g["versionNumber"], len(g["metrics"])) for g in by_version] == [(2, 1), (1, 2)]


def test_results_compare_with_welch_t_test(api: httpx.Client) -> None:
    # Welch's t-test, example 1 of the Wikipedia article: t = -2.46, df = 24.99, p = 0.021.
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    prompt_id, (control, variant) = prompt_with_versions(api, 2)
    deployment = deploy(api, prompt_id, [control, variant], [50, 50])
    batch = [
        {
            "versionId": control["id"],
            "type": "quality",
            "name": "score",
            "value": v,
            "deploymentId": deployment["id"],
        }
        for v in a2
    ] + [{"versionId": variant["id"], "type": "quality", "name": "score", "value": v} for v in a1]
    assert api.post(INGEST, json={"metrics": batch}).status_code == 202
    results = api.get(f"/api/v1/deployments/{deployment['id']}/results").json()
    assert results["method"] == "welch-t"
    assert results["control"] == control["id"]
    first, second = results["variants"]
    assert (first["isControl"], first["samples"], second["samples"]) == (True, 15, 15)
    assert "vsControl" not in first["metrics"]["score"]
    comparison = second["metrics"]["score"]["vsControl"]
    assert comparison["samples"] == {"variant": 15, "control": 15}
    assert math.isclose(comparison["delta"], statistics.fmean(a1) - statistics.fmean(a2))
    assert math.isclose(comparison["t"], -2.4554, abs_tol=1e-3)
    assert math.isclose(comparison["df"], 24.9885, abs_tol=1e-3)
    assert math.isclose(comparison["pValue"], 0.021378, abs_tol=1e-5)
    low, high = comparison["ci95"]
    # delta ± t(0.975, 24.99) · se, with t(0.975, 24.99) = 2.0597
    assert math.isclose(low, -3.98410, abs_tol=1e-3)
    assert math.isclose(high, -0.34924, abs_tol=1e-3)


def test_guardrail_pauses_the_deployment(stack: Stack, api: httpx.Client) -> None:
    prompt_id, (v1, v2) = prompt_with_versions(api, 2)
    deployment = deploy(
        api,
        prompt_id,
        [v1, v2],
        [50, 50],
        guardrails=[{"metric": "latency_ms", "stat": "p95", "max": 800, "minSamples": 20}],
    )
    url = f"/api/v1/deployments/{deployment['id']}"
    # A bad variant, but too few samples to judge yet.
    slow = [point(v2["id"], 2000.0, deploymentId=deployment["id"]) for _ in range(19)]
    fast = [point(v1["id"], 100.0, deploymentId=deployment["id"]) for _ in range(50)]
    assert api.post(INGEST, json={"metrics": slow + fast}).status_code == 202
    assert api.get(url).json()["status"] == "active"
    # A check this small leaves no gap, but on a slow machine it may take over 50 ms; then the 20th
    # sample falls in the gap after it (10 x its time, at most 1 s), and one deferred check covers it.
    sent = time.monotonic()
    assert api.post(INGEST, json={"metrics": slow[:1]}).status_code == 202
    paused = api.get(url).json()
    while paused["status"] == "active" and time.monotonic() - sent < 5:
        time.sleep(0.05)
        paused = api.get(url).json()
    assert paused["status"] == "paused", paused
    assert time.monotonic() - sent < 2.5
    reason = paused["pausedReason"]
    assert reason["versionId"] == v2["id"]
    assert reason["samples"] == 20
    assert reason["observed"] == 2000.0
    assert reason["guardrail"] == {"metric": "latency_ms", "stat": "p95", "max": 800, "minSamples": 20}
    assert_error(api.get(f"{url}/resolve", params={"sessionId": "x"}), 409, "DEPLOYMENT_INACTIVE")
    assert api.get(f"{url}/results").json()["pausedReason"] == reason
    events = asyncio.run(collect(stack.nats_url, subject="pvc.events.deployment.>", want=10_000, wait=2))
    mine = [e["type"] for e in events if e["data"].get("deploymentId") == deployment["id"]]
    assert mine == ["deployment.created", "deployment.guardrail_tripped", "deployment.updated"]
    # Resuming clears the reason.
    resumed = api.put(url, json={"status": "active"}).json()
    assert (resumed["status"], resumed["pausedReason"]) == ("active", None)


def test_a_breach_after_a_quiet_spell_pauses_before_ingest_returns(api: httpx.Client) -> None:
    prompt_id, (v1, v2) = prompt_with_versions(api, 2)
    rule = {"metric": "cost_usd", "stat": "mean", "max": 0.01, "minSamples": 5}
    deployment = deploy(api, prompt_id, [v1, v2], [50, 50], guardrails=[rule])
    costly = [
        {
            "versionId": v2["id"],
            "type": "cost",
            "name": "cost_usd",
            "value": 0.5,
            "deploymentId": deployment["id"],
        }
        for _ in range(5)
    ]
    assert api.post(INGEST, json={"metrics": costly}).status_code == 202
    paused = api.get(f"/api/v1/deployments/{deployment['id']}").json()
    assert paused["status"] == "paused"
    assert (paused["pausedReason"]["versionId"], paused["pausedReason"]["observed"]) == (v2["id"], 0.5)
