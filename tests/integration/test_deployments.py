"""Deployments: CRUD and its rules, sticky resolve, re-weighting, paused and archived deployments."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import httpx
import pytest

from .support import ClientFactory, assert_error, unique


def expected_variant(seed: str, session: str, weights: list[float]) -> int:
    """DESIGN.md's rule, written out independently of the code under test."""
    point = int(hashlib.sha256(f"{seed}.{session}".encode()).hexdigest()[:15], 16) / (16**15 - 1)
    total = 0.0
    for index, weight in enumerate(weights):
        total += weight
        if total / 100 > point:
            return index
    return len(weights) - 1


def prompt_with_versions(api: httpx.Client, count: int) -> tuple[str, list[dict[str, Any]]]:
    name = unique()
    prompt = api.post("/api/v1/prompts", json={"name": name})
    assert prompt.status_code == 201, prompt.text
    versions = []
    for i in range(count):
        created = api.post(f"/api/v1/prompts/{name}/versions", json={"template": f"variant {i} {{{{x}}}}"})
        assert created.status_code == 201, created.text
        versions.append(created.json())
    return prompt.json()["id"], versions


def deploy(
    api: httpx.Client, prompt_id: str, versions: list[dict[str, Any]], weights: list[float], **extra: Any
) -> dict[str, Any]:
    body = {
        "promptId": prompt_id,
        "name": unique("dep"),
        "variants": [
            {"versionId": v["id"], "weight": w, "isControl": i == 0}
            for i, (v, w) in enumerate(zip(versions, weights, strict=True))
        ],
        **extra,
    }
    created = api.post("/api/v1/deployments", json=body)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def test_create_get_list_and_event_shape(api: httpx.Client) -> None:
    prompt_id, versions = prompt_with_versions(api, 2)
    created = deploy(api, prompt_id, versions, [70, 30])
    assert created["status"] == "active"
    assert created["promptId"] == prompt_id
    assert [(v["versionNumber"], v["weight"], v["isControl"]) for v in created["variants"]] == [
        (1, 70, True),
        (2, 30, False),
    ]
    assert len(created["seed"]) >= 16
    assert created["pausedReason"] is None
    assert api.get(f"/api/v1/deployments/{created['id']}").json() == created
    listed = api.get("/api/v1/deployments", params={"promptId": prompt_id}).json()
    assert [d["id"] for d in listed["data"]] == [created["id"]]
    assert listed["meta"] == {"limit": 20, "nextCursor": None}
    assert (
        api.get("/api/v1/deployments", params={"promptId": prompt_id, "status": "paused"}).json()["data"]
        == []
    )


@pytest.mark.parametrize(
    ("weights", "message"),
    [([50, 40], "sum"), ([120, -20], "weight"), ([50.5, 49.4], "sum"), ([0, 0], "sum")],
)
def test_weights_must_be_non_negative_and_sum_to_100(
    api: httpx.Client, weights: list[float], message: str
) -> None:
    prompt_id, versions = prompt_with_versions(api, 2)
    body = {
        "promptId": prompt_id,
        "name": "w",
        "variants": [{"versionId": v["id"], "weight": w} for v, w in zip(versions, weights, strict=True)],
    }
    error = assert_error(api.post("/api/v1/deployments", json=body), 400, "INVALID_WEIGHTS")
    assert message in error["message"]


def test_deployment_rules(api: httpx.Client, client_for: ClientFactory) -> None:
    prompt_id, versions = prompt_with_versions(api, 2)
    other_prompt, other_versions = prompt_with_versions(api, 1)
    v1, v2 = versions

    def body(variants: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"promptId": prompt_id, "name": "rules", "variants": variants, **extra}

    two_controls = [
        {"versionId": v1["id"], "weight": 50, "isControl": True},
        {"versionId": v2["id"], "weight": 50, "isControl": True},
    ]
    error = assert_error(api.post("/api/v1/deployments", json=body(two_controls)), 400, "VALIDATION_ERROR")
    assert "control" in error["message"]
    foreign_prompt = [
        {"versionId": v1["id"], "weight": 50},
        {"versionId": other_versions[0]["id"], "weight": 50},
    ]
    error = assert_error(api.post("/api/v1/deployments", json=body(foreign_prompt)), 400, "VALIDATION_ERROR")
    assert "variants[1].versionId" in error["details"]["fields"]
    unknown = [{"versionId": "00000000-0000-4000-8000-000000000000", "weight": 100}]
    assert_error(api.post("/api/v1/deployments", json=body(unknown)), 404, "NOT_FOUND")
    twice = [{"versionId": v1["id"], "weight": 50}, {"versionId": v1["id"], "weight": 50}]
    assert_error(api.post("/api/v1/deployments", json=body(twice)), 400, "VALIDATION_ERROR")
    # Wrong types, missing and unknown fields are 400 naming the field.
    for bad, field in [
        ({"promptId": prompt_id, "variants": [{"versionId": v1["id"], "weight": 100}]}, "name"),
        (body([{"versionId": v1["id"], "weight": "100"}]), "variants.0.weight"),
        (body([{"versionId": v1["id"], "weight": 100}], colour="red"), "colour"),
        (body([]), "variants"),
        (body([{"versionId": v1["id"], "weight": 100}], status="archived"), "status"),
        (
            body([{"versionId": v1["id"], "weight": 100}], guardrails=[{"metric": "x", "stat": "p42"}]),
            "guardrails.0.stat",
        ),
        ({**body([{"versionId": v1["id"], "weight": 100}]), "promptId": "nope"}, "promptId"),
    ]:
        error = assert_error(api.post("/api/v1/deployments", json=bad), 400, "VALIDATION_ERROR")
        assert field in error["details"]["fields"], (field, error)
    # One active deployment per prompt; a paused one may sit beside it.
    first = deploy(api, prompt_id, versions, [50, 50])
    assert_error(
        api.post("/api/v1/deployments", json=body([{"versionId": v1["id"], "weight": 100}])), 409, "CONFLICT"
    )
    paused = api.post(
        "/api/v1/deployments", json=body([{"versionId": v1["id"], "weight": 100}], status="paused")
    )
    assert paused.status_code == 201, paused.text
    assert_error(
        api.put(f"/api/v1/deployments/{paused.json()['id']}", json={"status": "active"}), 409, "CONFLICT"
    )
    # Scopes and projects.
    reader = client_for(scopes=["read"])
    assert_error(
        reader.post("/api/v1/deployments", json=body([{"versionId": v1["id"], "weight": 100}])),
        403,
        "FORBIDDEN",
    )
    assert reader.get(f"/api/v1/deployments/{first['id']}").status_code == 200
    stranger = client_for(scopes=["admin"], project=unique("proj"))
    assert_error(stranger.get(f"/api/v1/deployments/{first['id']}"), 404, "NOT_FOUND")
    assert_error(stranger.get(f"/api/v1/deployments/{first['id']}/resolve"), 404, "NOT_FOUND")
    assert_error(
        stranger.post("/api/v1/deployments", json=body([{"versionId": v1["id"], "weight": 100}])),
        404,
        "NOT_FOUND",
    )
    assert_error(api.get("/api/v1/deployments/not-a-uuid"), 404, "NOT_FOUND")
    assert other_prompt


@pytest.mark.parametrize("weights", [[50, 50], [10, 90], [20, 30, 50], [0, 100], [33.3, 33.3, 33.4]])
def test_resolve_is_sticky_and_follows_the_published_rule(api: httpx.Client, weights: list[float]) -> None:
    prompt_id, versions = prompt_with_versions(api, len(weights))
    deployment = deploy(api, prompt_id, versions, weights)
    counts: Counter[int] = Counter()
    for i in range(150):
        session = f"user-{i}"
        answer = api.get(
            f"/api/v1/deployments/{deployment['id']}/resolve", params={"sessionId": session}
        ).json()
        index = expected_variant(deployment["seed"], session, weights)
        assert answer == {
            "deploymentId": deployment["id"],
            "versionId": versions[index]["id"],
            "versionNumber": versions[index]["number"],
            "sessionId": session,
            "sticky": True,
        }
        counts[index] += 1
        if i % 50 == 0:  # the same session again, the same answer
            again = api.get(f"/api/v1/deployments/{deployment['id']}/resolve", params={"sessionId": session})
            assert again.json() == answer
    for index, weight in enumerate(weights):
        if weight == 0:
            assert counts[index] == 0
    anonymous = api.get(f"/api/v1/deployments/{deployment['id']}/resolve").json()
    assert anonymous["sticky"] is False
    assert anonymous["sessionId"] is None


def test_reweighting_moves_only_sessions_near_the_boundary(api: httpx.Client) -> None:
    prompt_id, versions = prompt_with_versions(api, 2)
    deployment = deploy(api, prompt_id, versions, [50, 50])
    sessions = [f"s-{i}" for i in range(200)]

    def assignments() -> list[str]:
        return [
            api.get(f"/api/v1/deployments/{deployment['id']}/resolve", params={"sessionId": s}).json()[
                "versionId"
            ]
            for s in sessions
        ]

    before = assignments()
    updated = api.put(
        f"/api/v1/deployments/{deployment['id']}",
        json={
            "variants": [
                {"versionId": versions[0]["id"], "weight": 60, "isControl": True},
                {"versionId": versions[1]["id"], "weight": 40},
            ]
        },
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["seed"] == deployment["seed"]
    after = assignments()
    moved = [s for s, a, b in zip(sessions, before, after, strict=True) if a != b]
    # Only sessions from variant 2 to variant 1 (the boundary moved from 0.5 to 0.6) ...
    assert all(b == versions[0]["id"] for s, a, b in zip(sessions, before, after, strict=True) if a != b)
    # ... about 10% of them (200 sessions: generous bounds).
    assert 5 <= len(moved) <= 40, len(moved)


def test_paused_and_archived(api: httpx.Client) -> None:
    prompt_id, versions = prompt_with_versions(api, 2)
    deployment = deploy(api, prompt_id, versions, [50, 50])
    url = f"/api/v1/deployments/{deployment['id']}"
    paused = api.put(url, json={"status": "paused"}).json()
    assert paused["status"] == "paused"
    error = assert_error(api.get(f"{url}/resolve", params={"sessionId": "a"}), 409, "DEPLOYMENT_INACTIVE")
    assert error["details"]["status"] == "paused"
    assert api.put(url, json={"status": "active"}).json()["status"] == "active"
    assert api.get(f"{url}/resolve", params={"sessionId": "a"}).status_code == 200
    archived = api.delete(url)
    assert archived.status_code == 200
    assert archived.json()["status"] == "archived"
    assert_error(api.get(f"{url}/resolve", params={"sessionId": "a"}), 409, "DEPLOYMENT_INACTIVE")
    assert_error(api.put(url, json={"status": "active"}), 409, "DEPLOYMENT_INACTIVE")
    # Kept for its results, and the prompt may get a new active deployment.
    assert api.get(url).json()["status"] == "archived"
    assert api.get(f"{url}/results").status_code == 200
    assert [
        d["id"]
        for d in api.get("/api/v1/deployments", params={"promptId": prompt_id, "status": "archived"}).json()[
            "data"
        ]
    ] == [deployment["id"]]
    deploy(api, prompt_id, versions, [100, 0])
