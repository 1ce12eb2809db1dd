"""Tags: move, read, history, delete; production is protected; one version per tag."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import httpx

from .support import assert_error, unique


def prompt_with_versions(api: httpx.Client, count: int) -> str:
    name = unique()
    assert api.post("/api/v1/prompts", json={"name": name}).status_code == 201
    for i in range(count):
        assert api.post(f"/api/v1/prompts/{name}/versions", json={"template": f"body {i}"}).status_code == 201
    return name


def test_move_tag_by_number_and_id_with_history(api: httpx.Client) -> None:
    prompt = prompt_with_versions(api, 3)
    moved = api.post(f"/api/v1/prompts/{prompt}/tags/staging", json={"version": 1})
    assert moved.status_code == 200, moved.text
    assert moved.json()["versionNumber"] == 1
    v3 = api.get(f"/api/v1/prompts/{prompt}/versions/3").json()
    moved = api.post(f"/api/v1/prompts/{prompt}/tags/staging", json={"versionId": v3["id"]}).json()
    assert moved == {**moved, "name": "staging", "versionId": v3["id"], "versionNumber": 3}
    assert api.get(f"/api/v1/prompts/{prompt}/tags/staging").json() == moved
    assert api.get(f"/api/v1/prompts/{prompt}").json()["tags"] == {"staging": 3}
    history = api.get(f"/api/v1/prompts/{prompt}/tags/staging/history").json()["data"]
    assert [(h["versionNumber"], h["previousVersionNumber"]) for h in history] == [(3, 1), (1, None)]
    assert all(h["actor"] == "bootstrap-admin" and h["at"].endswith("Z") for h in history)
    # Moving to where it already points records nothing.
    api.post(f"/api/v1/prompts/{prompt}/tags/staging", json={"version": 3})
    assert len(api.get(f"/api/v1/prompts/{prompt}/tags/staging/history").json()["data"]) == 2


def test_custom_tags_and_list(api: httpx.Client) -> None:
    prompt = prompt_with_versions(api, 2)
    api.post(f"/api/v1/prompts/{prompt}/tags/draft", json={"version": 2})
    api.post(f"/api/v1/prompts/{prompt}/tags/canary-eu", json={"version": 1})
    tags = api.get(f"/api/v1/prompts/{prompt}/tags").json()["data"]
    assert [(t["name"], t["versionNumber"]) for t in tags] == [("canary-eu", 1), ("draft", 2)]
    for bad in ("Bad", "1abc", "a" * 33, "with_underscore"):
        assert_error(
            api.post(f"/api/v1/prompts/{prompt}/tags/{bad}", json={"version": 1}), 400, "VALIDATION_ERROR"
        )


def test_delete_tag(api: httpx.Client) -> None:
    prompt = prompt_with_versions(api, 1)
    api.post(f"/api/v1/prompts/{prompt}/tags/draft", json={"version": 1})
    deleted = api.delete(f"/api/v1/prompts/{prompt}/tags/draft")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(api.get(f"/api/v1/prompts/{prompt}/tags/draft"), 404, "NOT_FOUND")
    assert_error(api.delete(f"/api/v1/prompts/{prompt}/tags/draft"), 404, "NOT_FOUND")
    history = api.get(f"/api/v1/prompts/{prompt}/tags/draft/history").json()["data"]
    assert [(h["kind"], h["versionNumber"], h["previousVersionNumber"]) for h in history] == [
        ("removed", None, 1),
        ("moved", 1, None),
    ]


def test_production_is_protected(api: httpx.Client) -> None:
    prompt = prompt_with_versions(api, 1)
    assert_error(
        api.post(f"/api/v1/prompts/{prompt}/tags/production", json={"version": 1}), 409, "PROTECTED_TAG"
    )
    assert_error(api.delete(f"/api/v1/prompts/{prompt}/tags/production"), 409, "PROTECTED_TAG")
    assert api.get(f"/api/v1/prompts/{prompt}/tags").json()["data"] == []


def test_bad_tag_bodies(api: httpx.Client) -> None:
    prompt = prompt_with_versions(api, 1)
    url = f"/api/v1/prompts/{prompt}/tags/staging"
    for body in (
        {},
        {"version": 1, "versionId": "00000000-0000-0000-0000-000000000001"},
        {"version": "1"},
        {"version": 0},
        {"versionId": "nope"},
        {"version": 1, "extra": True},
    ):
        assert_error(api.post(url, json=body), 400, "VALIDATION_ERROR")
    assert_error(api.post(url, json={"version": 9}), 404, "NOT_FOUND")
    assert_error(api.post(url, json={"versionId": "00000000-0000-0000-0000-000000000001"}), 404, "NOT_FOUND")
    assert api.get(f"/api/v1/prompts/{prompt}/tags").json()["data"] == []


def test_concurrent_moves_leave_one_consistent_tag(api: httpx.Client) -> None:
    prompt = prompt_with_versions(api, 5)

    def move(number: int) -> int:
        return api.post(f"/api/v1/prompts/{prompt}/tags/staging", json={"version": number}).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(move, [1, 2, 3, 4, 5] * 2)) == {200}
    tags = api.get(f"/api/v1/prompts/{prompt}/tags").json()["data"]
    assert len(tags) == 1
    history = api.get(f"/api/v1/prompts/{prompt}/tags/staging/history", params={"limit": 100}).json()["data"]
    # The history is a chain: each move's previous version is the one the move before it set.
    chain = list(reversed(history))
    assert chain[0]["previousVersionNumber"] is None
    for before, after in itertools.pairwise(chain):
        assert after["previousVersionNumber"] == before["versionNumber"]
    assert chain[-1]["versionNumber"] == tags[0]["versionNumber"]
