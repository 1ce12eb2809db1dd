"""Eval-gated promotion, override, rollback and the trail; concurrency; evals down; events."""

from __future__ import annotations

import asyncio
import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from pvc.devstack import Stack

from .gating import production_number, prompt_with_versions, record, staged, wait_for
from .support import ClientFactory, assert_error, unique
from .test_events import collect


def trail(api: httpx.Client, prompt: str) -> list[tuple[str, int | None, int]]:
    rows = api.get(f"/api/v1/prompts/{prompt}/promotions").json()["data"]
    return [(r["kind"], r["fromVersion"], r["toVersion"]) for r in rows]


def test_promote_without_staging_is_409(api: httpx.Client) -> None:
    name, _ = prompt_with_versions(api, 1)
    assert_error(api.post(f"/api/v1/prompts/{name}/promote"), 409, "NO_STAGING")
    assert_error(api.post(f"/api/v1/prompts/{name}/promote", json={}), 409, "NO_STAGING")


def test_blocked_promotion_changes_nothing(api: httpx.Client) -> None:
    name, (version,) = staged(api)
    record(api, version["id"], status="failed", score=0.3)
    error = assert_error(
        api.post(f"/api/v1/prompts/{name}/promote", json={"reason": "ship it"}), 409, "PROMOTION_BLOCKED"
    )
    gate = error["details"]["gate"]  # type: ignore[index]
    assert gate["canPromote"] is False
    assert gate["reasons"] == ["harness 'quality' failed", "mean score 0.3 is below minScore 0.8"]
    assert production_number(api, name) is None
    assert trail(api, name) == []
    assert api.get(f"/api/v1/prompts/{name}/tags/production/history").json()["data"] == []


def test_promote_staging_then_a_given_version(api: httpx.Client) -> None:
    name, (v1, v2) = staged(api, 2)
    record(api, v2["id"], score=0.95)
    promoted = api.post(f"/api/v1/prompts/{name}/promote", json={"reason": "release 1"})
    assert promoted.status_code == 200, promoted.text
    body = promoted.json()
    assert body == {**body, "promoted": True, "version": 2, "versionId": v2["id"], "previousVersion": None}
    assert body["gate"]["canPromote"] is True
    assert body["gate"]["evaluations"][0]["score"] == 0.95
    assert production_number(api, name) == 2
    # Promoting a given version (not staging) works the same way, through the gate.
    assert_error(
        api.post(f"/api/v1/prompts/{name}/promote", json={"versionId": v1["id"]}), 409, "PROMOTION_BLOCKED"
    )
    record(api, v1["id"], score=0.8)
    again = api.post(f"/api/v1/prompts/{name}/promote", json={"versionId": v1["id"]}).json()
    assert (again["version"], again["previousVersion"]) == (1, 2)
    rows = api.get(f"/api/v1/prompts/{name}/promotions").json()["data"]
    assert [(r["kind"], r["fromVersion"], r["toVersion"], r["reason"]) for r in rows] == [
        ("promote", 2, 1, ""),
        ("promote", None, 2, "release 1"),
    ]
    assert rows[1]["actor"] == "bootstrap-admin"
    assert rows[1]["gate"]["canPromote"] is True
    assert rows[1]["at"].endswith("Z")
    history = api.get(f"/api/v1/prompts/{name}/tags/production/history").json()["data"]
    assert [(h["versionNumber"], h["previousVersionNumber"]) for h in history] == [(1, 2), (2, None)]
    # Promoting what is already in production is a conflict, not a second move.
    assert_error(api.post(f"/api/v1/prompts/{name}/promote", json={"versionId": v1["id"]}), 409, "CONFLICT")
    assert len(trail(api, name)) == 2


def test_promote_bad_input(api: httpx.Client, client_for: ClientFactory) -> None:
    name, (version,) = staged(api)
    for body in (
        {"versionId": "nope"},
        {"versionId": 5},
        {"reason": 5},
        {"other": 1},
        {"reason": "x" * 10_001},
    ):
        assert_error(api.post(f"/api/v1/prompts/{name}/promote", json=body), 400, "VALIDATION_ERROR")
    assert_error(
        api.post(
            f"/api/v1/prompts/{name}/promote", content=b"[", headers={"content-type": "application/json"}
        ),
        400,
        "VALIDATION_ERROR",
    )
    _, (foreign,) = prompt_with_versions(api, 1)
    assert_error(
        api.post(f"/api/v1/prompts/{name}/promote", json={"versionId": foreign["id"]}), 404, "NOT_FOUND"
    )
    assert_error(api.post("/api/v1/prompts/no-such-prompt/promote"), 404, "NOT_FOUND")
    stranger = client_for(scopes=["admin"], project=unique("proj"))
    assert_error(stranger.post(f"/api/v1/prompts/{name}/promote"), 404, "NOT_FOUND")
    assert_error(stranger.get(f"/api/v1/prompts/{name}/promotions"), 404, "NOT_FOUND")
    assert_error(
        client_for(scopes=["read", "prompts:write"]).post(f"/api/v1/prompts/{name}/promote"), 403, "FORBIDDEN"
    )
    assert_error(client_for(scopes=["promote"]).get(f"/api/v1/prompts/{name}/promotions"), 403, "FORBIDDEN")
    api.delete(f"/api/v1/prompts/{name}")
    record(api, version["id"])
    assert_error(api.post(f"/api/v1/prompts/{name}/promote"), 409, "ARCHIVED")


def test_override_needs_reason_and_scope(api: httpx.Client, client_for: ClientFactory) -> None:
    name, (version,) = staged(api)
    url = f"/api/v1/prompts/{name}/promote/override"
    assert_error(api.post(url, json={"versionId": version["id"]}), 400, "VALIDATION_ERROR")
    assert_error(api.post(url, json={"versionId": version["id"], "reason": ""}), 400, "VALIDATION_ERROR")
    assert_error(api.post(url, json={"versionId": version["id"], "reason": "   "}), 400, "VALIDATION_ERROR")
    assert_error(api.post(url, json={"reason": "hotfix"}), 400, "VALIDATION_ERROR")
    promoter = client_for(scopes=["promote", "read"])
    assert_error(promoter.post(url, json={"versionId": version["id"], "reason": "hotfix"}), 403, "FORBIDDEN")
    assert production_number(api, name) is None
    overrider = client_for(scopes=["promote:override"])
    done = overrider.post(url, json={"versionId": version["id"], "reason": "hotfix for incident 42"})
    assert done.status_code == 200, done.text
    assert done.json() == {
        "promoted": True,
        "overridden": True,
        "version": 1,
        "versionId": version["id"],
        "previousVersion": None,
        "reason": "hotfix for incident 42",
    }
    row = api.get(f"/api/v1/prompts/{name}/promotions").json()["data"][0]
    assert (row["kind"], row["reason"], row["actor"], row["gate"]) == (
        "override",
        "hotfix for incident 42",
        "test-promote:override",
        None,
    )


def test_rollback_walks_back_through_history(api: httpx.Client) -> None:
    name, versions = prompt_with_versions(api, 3)
    for version in versions:
        record(api, version["id"])
    assert_error(api.post(f"/api/v1/prompts/{name}/rollback"), 409, "NO_PREVIOUS")
    # Production history 1 -> 3 -> 2: rollback goes to 3 (what held it before), not 2 - 1.
    for number in (1, 3, 2):
        assert (
            api.post(
                f"/api/v1/prompts/{name}/promote", json={"versionId": versions[number - 1]["id"]}
            ).status_code
            == 200
        )
    back = api.post(f"/api/v1/prompts/{name}/rollback", json={"reason": "v2 regressed"})
    assert back.status_code == 200, back.text
    assert back.json() == {
        **back.json(),
        "rolledBack": True,
        "version": 3,
        "previousVersion": 2,
        "reason": "v2 regressed",
    }
    second = api.post(f"/api/v1/prompts/{name}/rollback").json()
    assert (second["version"], second["previousVersion"]) == (1, 3)
    assert_error(api.post(f"/api/v1/prompts/{name}/rollback"), 409, "NO_PREVIOUS")
    assert production_number(api, name) == 1
    assert trail(api, name) == [
        ("rollback", 3, 1),
        ("rollback", 2, 3),
        ("promote", 3, 2),
        ("promote", 1, 3),
        ("promote", None, 1),
    ]


def test_rollback_after_an_override_and_a_new_promotion(api: httpx.Client) -> None:
    name, (v1, v2, v3) = prompt_with_versions(api, 3)
    record(api, v1["id"])
    record(api, v3["id"])
    api.post(f"/api/v1/prompts/{name}/promote", json={"versionId": v1["id"]})
    override = api.post(
        f"/api/v1/prompts/{name}/promote/override", json={"versionId": v2["id"], "reason": "urgent"}
    )
    assert override.status_code == 200
    rolled = api.post(f"/api/v1/prompts/{name}/rollback").json()
    assert (rolled["version"], rolled["previousVersion"]) == (1, 2)
    # After a rollback, a new promotion is undone back to where it started.
    api.post(f"/api/v1/prompts/{name}/promote", json={"versionId": v3["id"]})
    again = api.post(f"/api/v1/prompts/{name}/rollback").json()
    assert (again["version"], again["previousVersion"]) == (1, 3)
    assert_error(api.post(f"/api/v1/prompts/{name}/rollback"), 409, "NO_PREVIOUS")


def test_rollback_scope_and_body(api: httpx.Client, client_for: ClientFactory) -> None:
    name, _ = staged(api)
    assert_error(client_for(scopes=["read"]).post(f"/api/v1/prompts/{name}/rollback"), 403, "FORBIDDEN")
    assert_error(
        api.post(f"/api/v1/prompts/{name}/rollback", json={"reason": ["x"]}), 400, "VALIDATION_ERROR"
    )
    assert_error(api.post("/api/v1/prompts/no-such-prompt/rollback"), 404, "NOT_FOUND")


def test_concurrent_promotes_of_the_same_staging(api: httpx.Client) -> None:
    name, (version,) = staged(api)
    record(api, version["id"])
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: api.post(f"/api/v1/prompts/{name}/promote").status_code, range(6)))
    assert sorted(statuses) == [200] + [409] * 5
    assert trail(api, name) == [("promote", None, 1)]
    assert len(api.get(f"/api/v1/prompts/{name}/tags/production/history").json()["data"]) == 1


def test_concurrent_promotes_of_different_versions_leave_one_consistent_chain(api: httpx.Client) -> None:
    name, versions = prompt_with_versions(api, 5)
    for version in versions:
        record(api, version["id"])

    def promote(version_id: str) -> int:
        return api.post(f"/api/v1/prompts/{name}/promote", json={"versionId": version_id}).status_code

    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = list(pool.map(promote, [v["id"] for v in versions]))
    assert statuses == [200] * 5
    rows = list(reversed(trail(api, name)))
    assert rows[0][1] is None
    for earlier, later in itertools.pairwise(rows):
        assert later[1] == earlier[2]  # each move starts where the previous one ended
    assert sorted(r[2] for r in rows) == [1, 2, 3, 4, 5]
    assert production_number(api, name) == rows[-1][2]


def test_evals_down_means_503_and_nothing_changes(stack: Stack, api: httpx.Client) -> None:
    name, (v1, v2) = staged(api, 2)
    record(api, v1["id"])
    record(api, v2["id"])
    api.post(f"/api/v1/prompts/{name}/promote", json={"versionId": v1["id"]})
    stack.stop_process("evals")
    try:
        started = time.monotonic()
        assert_error(api.post(f"/api/v1/prompts/{name}/promote"), 503, "UNAVAILABLE")
        assert time.monotonic() - started < 10
        assert production_number(api, name) == 1
        assert trail(api, name) == [("promote", None, 1)]
        assert_error(api.get(f"/api/v1/evaluations/versions/{v2['id']}/gate"), 503, "UNAVAILABLE")
        # Override and rollback do not consult the gate: they still work while evals is down.
        override = api.post(
            f"/api/v1/prompts/{name}/promote/override", json={"versionId": v2["id"], "reason": "evals down"}
        )
        assert override.status_code == 200
        assert api.post(f"/api/v1/prompts/{name}/rollback").json()["version"] == 1
    finally:
        stack.start_process("evals")
    wait_for(lambda: api.get(f"/api/v1/evaluations/versions/{v2['id']}/gate").status_code == 200)
    assert api.post(f"/api/v1/prompts/{name}/promote").status_code == 200
    assert production_number(api, name) == 2


def test_promotion_events(stack: Stack, api: httpx.Client) -> None:
    name, (v1, v2) = staged(api, 2)
    prompt_id = v1["promptId"]
    record(api, v1["id"])
    record(api, v2["id"], status="failed", score=0.1)
    api.post(f"/api/v1/prompts/{name}/promote", json={"versionId": v1["id"]})
    api.post(f"/api/v1/prompts/{name}/promote")  # blocked
    api.post(f"/api/v1/prompts/{name}/promote/override", json={"versionId": v2["id"], "reason": "trust me"})
    api.post(f"/api/v1/prompts/{name}/rollback")
    events = asyncio.run(collect(stack.nats_url, subject="pvc.events.promotion.>", want=10_000, wait=3))
    mine = [e for e in events if e["data"].get("promptId") == prompt_id]
    assert [e["type"] for e in mine] == [
        "promotion.succeeded",
        "promotion.blocked",
        "promotion.overridden",
        "promotion.rolled_back",
    ]
    assert mine[0]["data"]["versionNumber"] == 1
    assert mine[1]["data"]["gate"]["reasons"][0] == "harness 'quality' failed"
    assert mine[2]["data"]["reason"] == "trust me"
    assert (mine[3]["data"]["versionNumber"], mine[3]["data"]["previousVersionNumber"]) == (1, 2)
    completed = asyncio.run(
        collect(stack.nats_url, subject="pvc.events.evaluation.completed", want=10_000, wait=3)
    )
    assert {e["data"]["versionId"] for e in completed} >= {v1["id"], v2["id"]}
