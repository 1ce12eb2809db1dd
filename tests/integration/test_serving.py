"""The serving hot path `GET /prompts/{prompt}/resolve`: cached per gateway, invalidated by events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from pvc.devstack import Stack

from .support import ClientFactory, assert_error, unique
from .test_deployments import deploy, expected_variant, prompt_with_versions

VISIBLE_WITHIN = 1.0


def resolve(api: httpx.Client, prompt: str, **params: str) -> httpx.Response:
    return api.get(f"/api/v1/prompts/{prompt}/resolve", params=params)


def wait_for(check: Callable[[], bool], *, within: float = VISIBLE_WITHIN) -> float:
    """Seconds until `check()` holds; fails past `within`."""
    started = time.monotonic()
    while not check():
        elapsed = time.monotonic() - started
        assert elapsed < within, f"not visible after {elapsed:.2f} s"
        time.sleep(0.02)
    return time.monotonic() - started


def served(api: httpx.Client, prompt: str, **params: str) -> dict[str, Any]:
    response = resolve(api, prompt, **params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_tag_then_deployment_then_back(api: httpx.Client) -> None:
    prompt_id, versions = prompt_with_versions(api, 3)
    name = api.get(f"/api/v1/prompts/{prompt_id}").json()["name"]
    assert_error(resolve(api, name), 404, "NOT_FOUND")  # nothing tagged production, no deployment
    api.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": 1})
    answer = served(api, name, tag="staging")
    assert answer == {
        "version": {
            "id": versions[0]["id"],
            "number": 1,
            "template": versions[0]["template"],
            "variables": [],
            "config": {},
        },
        "deploymentId": None,
        "source": "tag",
    }
    # Warm now. A tag move is visible within a second (the event evicts the cached answer).
    assert served(api, prompt_id, tag="staging")["version"]["number"] == 1
    api.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": 2})
    wait_for(lambda: served(api, name, tag="staging")["version"]["number"] == 2)
    api.delete(f"/api/v1/prompts/{name}/tags/staging")
    wait_for(lambda: resolve(api, name, tag="staging").status_code == 404)
    api.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": 3})
    assert served(api, name, tag="staging")["version"]["number"] == 3
    # A deployment takes over the prompt (whatever the tag) ...
    deployment = deploy(api, prompt_id, versions[:2], [30, 70])
    wait_for(lambda: served(api, name, tag="staging")["source"] == "deployment")
    for session in ("alice", "bob", "carol", "dave"):
        answer = served(api, name, sessionId=session)
        index = expected_variant(deployment["seed"], session, [30, 70])
        assert answer["version"]["id"] == versions[index]["id"], session
        assert answer["deploymentId"] == deployment["id"]
    # ... a re-weight is visible within a second ...
    url = f"/api/v1/deployments/{deployment['id']}"
    api.put(
        url,
        json={
            "variants": [
                {"versionId": versions[0]["id"], "weight": 0},
                {"versionId": versions[1]["id"], "weight": 100},
            ]
        },
    )
    wait_for(
        lambda: all(
            served(api, name, sessionId=s)["version"]["number"] == 2
            for s in ("alice", "bob", "carol", "dave")
        )
    )
    # ... and a pause hands the prompt back to its tag.
    api.put(url, json={"status": "paused"})
    wait_for(lambda: served(api, name, tag="staging")["source"] == "tag")
    assert served(api, name, tag="staging")["version"]["number"] == 3


def test_resolve_checks_key_scope_and_project(
    api: httpx.Client, client_for: ClientFactory, anon: httpx.Client
) -> None:
    _, versions = prompt_with_versions(api, 1)
    name = api.get(f"/api/v1/prompts/{versions[0]['promptId']}").json()["name"]
    api.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": 1})
    assert served(api, name, tag="staging")["version"]["number"] == 1
    assert_error(resolve(anon, name, tag="staging"), 401, "UNAUTHORIZED")
    assert_error(resolve(client_for(scopes=["metrics:write"]), name, tag="staging"), 403, "FORBIDDEN")
    assert served(client_for(scopes=["read"]), name, tag="staging")["version"]["number"] == 1
    # The warm entry of one project is never another project's answer.
    assert_error(
        resolve(client_for(scopes=["read"], project=unique("proj")), name, tag="staging"), 404, "NOT_FOUND"
    )
    assert_error(resolve(api, name, tag="Bad_Tag"), 400, "VALIDATION_ERROR")
    assert_error(resolve(api, name, tag="staging", sessionId="x" * 257), 400, "VALIDATION_ERROR")


def test_warm_answers_survive_the_deployments_service_going_down(stack: Stack, api: httpx.Client) -> None:
    prompt_id, versions = prompt_with_versions(api, 2)
    deployment = deploy(api, prompt_id, versions, [50, 50])
    _, cold_versions = prompt_with_versions(api, 1)
    cold = cold_versions[0]["promptId"]
    expected = served(api, prompt_id, sessionId="warm-user")
    assert expected["deploymentId"] == deployment["id"]
    stack.stop_process("deployments")
    try:
        # Warm: still served, from the cache, and still sticky.
        for _ in range(3):
            assert served(api, prompt_id, sessionId="warm-user") == expected
        # Cold: 503 quickly, not a hang.
        started = time.monotonic()
        assert_error(resolve(api, cold), 503, "UNAVAILABLE")
        assert time.monotonic() - started < 2.0
    finally:
        stack.start_process("deployments")
    wait_for(lambda: resolve(api, cold).status_code == 404, within=10)


def test_promotion_and_rollback_are_visible_within_a_second(api: httpx.Client) -> None:
    prompt_id, versions = prompt_with_versions(api, 2)
    override = f"/api/v1/prompts/{prompt_id}/promote/override"
    done = api.post(override, json={"versionId": versions[0]["id"], "reason": "first release"})
    assert done.status_code == 200, done.text
    assert served(api, prompt_id)["version"]["number"] == 1  # now warm
    api.post(override, json={"versionId": versions[1]["id"], "reason": "second release"})
    wait_for(lambda: served(api, prompt_id)["version"]["number"] == 2)
    rolled = api.post(f"/api/v1/prompts/{prompt_id}/rollback", json={"reason": "back"})
    assert rolled.status_code == 200, rolled.text
    wait_for(lambda: served(api, prompt_id)["version"]["number"] == 1)
