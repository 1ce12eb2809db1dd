"""Versions: numbering (also under concurrency), checksum dedup, lookup by id or number, diff, render."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from .support import assert_error, unique


def new_prompt(api: httpx.Client, **body: object) -> str:
    name = unique()
    assert api.post("/api/v1/prompts", json={"name": name, **body}).status_code == 201
    return name


def add_version(api: httpx.Client, prompt: str, **body: object) -> httpx.Response:
    return api.post(f"/api/v1/prompts/{prompt}/versions", json=body)


def test_version_shape_and_checksum(api: httpx.Client) -> None:
    prompt = new_prompt(api)
    body = {
        "template": "Hi {{name}} ✓",
        "variables": [{"name": "name", "default": "you"}],
        "config": {"max_tokens": 256},
    }
    response = add_version(api, prompt, message="first", metadata={"ticket": "X-1"}, **body)
    assert response.status_code == 201, response.text
    version = response.json()
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert version["checksum"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert version["number"] == 1
    assert version["message"] == "first"
    assert version["metadata"] == {"ticket": "X-1"}
    assert version["config"] == {"max_tokens": 256}
    assert version["author"] == "bootstrap-admin"
    prompt_body = api.get(f"/api/v1/prompts/{prompt}").json()
    assert version["promptId"] == prompt_body["id"]
    assert prompt_body["latestVersion"] == 1


def test_same_content_as_latest_returns_it_with_200(api: httpx.Client) -> None:
    prompt = new_prompt(api)
    first = add_version(api, prompt, template="A", config={"t": 1})
    assert first.status_code == 201
    again = add_version(api, prompt, template="A", config={"t": 1}, message="ignored")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    second = add_version(api, prompt, template="B")
    assert second.json()["number"] == 2
    # Only the latest counts: going back to A's content is a new version 3.
    third = add_version(api, prompt, template="A", config={"t": 1})
    assert third.status_code == 201
    assert third.json()["number"] == 3
    assert third.json()["checksum"] == first.json()["checksum"]


def test_thirty_concurrent_creates_get_consecutive_numbers(api: httpx.Client) -> None:
    prompt = new_prompt(api)

    def create(i: int) -> httpx.Response:
        return add_version(api, prompt, template=f"version body {i}")

    with ThreadPoolExecutor(max_workers=30) as pool:
        responses = list(pool.map(create, range(30)))
    assert [r.status_code for r in responses] == [201] * 30, [
        r.text for r in responses if r.status_code != 201
    ]
    assert sorted(r.json()["number"] for r in responses) == list(range(1, 31))
    listed: list[int] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        page = api.get(f"/api/v1/prompts/{prompt}/versions", params=params).json()
        listed += [v["number"] for v in page["data"]]
        cursor = page["meta"]["nextCursor"]
        if not cursor:
            break
    assert listed == list(range(30, 0, -1))
    assert api.get(f"/api/v1/prompts/{prompt}").json()["latestVersion"] == 30


def test_get_version_by_id_or_number(api: httpx.Client) -> None:
    prompt = new_prompt(api, template="one")
    v2 = add_version(api, prompt, template="two").json()
    assert api.get(f"/api/v1/prompts/{prompt}/versions/2").json() == v2
    assert api.get(f"/api/v1/prompts/{prompt}/versions/{v2['id']}").json() == v2
    assert_error(api.get(f"/api/v1/prompts/{prompt}/versions/3"), 404, "NOT_FOUND")
    assert_error(api.get(f"/api/v1/prompts/{prompt}/versions/0"), 404, "NOT_FOUND")
    assert_error(api.get(f"/api/v1/prompts/{prompt}/versions/banana"), 404, "NOT_FOUND")
    other = new_prompt(api, template="other")
    # A version id of another prompt is not a version of this one.
    assert_error(api.get(f"/api/v1/prompts/{other}/versions/{v2['id']}"), 404, "NOT_FOUND")


def test_production_is_404_until_tagged(api: httpx.Client) -> None:
    prompt = new_prompt(api, template="one")
    assert_error(api.get(f"/api/v1/prompts/{prompt}/production"), 404, "NOT_FOUND")


def test_diff_between_versions(api: httpx.Client) -> None:
    prompt = new_prompt(
        api, template="You are a helpful assistant.\nAnswer about {{topic}}.\nBe brief.", variables=["topic"]
    )
    add_version(
        api,
        prompt,
        template="You are a sarcastic pirate.\nAnswer about {{topic}} for {{user}}.\nBe brief.",
        variables=["topic", "user"],
        config={"model": "gpt-x"},
    )
    response = api.get(f"/api/v1/prompts/{prompt}/diff", params={"fromVersion": 1, "toVersion": 2})
    assert response.status_code == 200, response.text
    diff = response.json()
    assert diff["fromVersion"] == 1
    assert diff["toVersion"] == 2
    assert diff["semanticImpact"] == "major"
    assert 0.5 <= diff["impact"]["score"] <= 1
    assert diff["impact"]["reasons"]
    assert diff["variables"] == {"added": ["user"], "removed": []}
    assert diff["config"] == {"changed": {"model": [None, "gpt-x"]}}
    assert {s["type"] for s in diff["sections"]} == {"modified"}
    first = diff["sections"][0]
    assert first["lineStart"] == 1
    assert first["oldValue"].startswith("You are a helpful")
    assert diff["stats"]["modified"] >= 1
    same = api.get(f"/api/v1/prompts/{prompt}/diff", params={"fromVersion": 2, "toVersion": 2}).json()
    assert same["sections"] == []
    assert same["semanticImpact"] == "none"
    assert_error(
        api.get(f"/api/v1/prompts/{prompt}/diff", params={"fromVersion": 1, "toVersion": 9}), 404, "NOT_FOUND"
    )
    assert_error(
        api.get(f"/api/v1/prompts/{prompt}/diff", params={"fromVersion": "x", "toVersion": 2}),
        400,
        "VALIDATION_ERROR",
    )


def test_render_substitutes_once_and_reports_missing(api: httpx.Client) -> None:
    prompt = new_prompt(api, template="Hello {{name}}, about {{topic}}. {{name}}!")
    add_version(api, prompt, template="v2 {{name}} {{missing}}")
    # No production tag yet: rendering the default (production) is a 404.
    assert_error(api.post(f"/api/v1/prompts/{prompt}/render", json={"variables": {}}), 404, "NOT_FOUND")
    response = api.post(
        f"/api/v1/prompts/{prompt}/render",
        json={"version": 1, "variables": {"name": "{{topic}}", "topic": 3}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rendered"] == "Hello {{topic}}, about 3. {{topic}}!"
    assert body["version"] == 1
    assert body["variablesUsed"] == ["name", "topic"]
    assert body["missingVariables"] == []
    api.post(f"/api/v1/prompts/{prompt}/tags/staging", json={"version": 2})
    staged = api.post(
        f"/api/v1/prompts/{prompt}/render", json={"tag": "staging", "variables": {"name": "Ann"}}
    ).json()
    assert staged["rendered"] == "v2 Ann {{missing}}"
    assert staged["missingVariables"] == ["missing"]
    assert_error(
        api.post(f"/api/v1/prompts/{prompt}/render", json={"variables": {"name": "x"}, "code": "1"}),
        400,
        "VALIDATION_ERROR",
    )
