"""Tenancy, table-driven over the live OpenAPI spec: a key of project B gets 404 for every route that
names a resource of project A, whatever the resource type (prompts, versions, tags, keys, and —
where those routes exist — evaluations, webhooks, deliveries, deployments, metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pvc.devstack import Stack

from .support import create_key, unique

# Bodies that are valid apart from naming A's resources, so B's request reaches the ownership check.
BODIES: dict[tuple[str, str], Callable[[dict[str, str]], dict[str, Any]]] = {
    ("PUT", "/api/v1/prompts/{prompt}"): lambda r: {"description": "stolen"},
    ("POST", "/api/v1/prompts/{prompt}/versions"): lambda r: {"template": "stolen"},
    ("POST", "/api/v1/prompts/{prompt}/render"): lambda r: {"variables": {}},
    ("POST", "/api/v1/prompts/{prompt}/tags/{name}"): lambda r: {"version": 1},
    ("POST", "/api/v1/prompts/{prompt}/promote"): lambda r: {"versionId": r["version"]},
    ("POST", "/api/v1/prompts/{prompt}/promote/override"): lambda r: {
        "versionId": r["version"],
        "reason": "x",
    },
    ("POST", "/api/v1/prompts/{prompt}/rollback"): lambda r: {},
    ("PUT", "/api/v1/prompts/{prompt}/gate"): lambda r: {"minScore": 0.5},
    ("PUT", "/api/v1/deployments/{id}"): lambda r: {"status": "paused"},
    ("PUT", "/api/v1/webhooks/{id}"): lambda r: {"active": False},
    ("POST", "/api/v1/webhooks/{id}/rotate-secret"): lambda r: {},
    ("POST", "/api/v1/webhooks/{id}/test"): lambda r: {},
    ("POST", "/api/v1/webhooks/{id}/deliveries/{did}/redeliver"): lambda r: {},
    ("PUT", "/api/v1/evaluations/harnesses/{name}"): lambda r: {"url": "http://127.0.0.1:9/intruder"},
}
# Upserts keyed by a name that is unique per project: B writing A's name makes B's own resource.
UPSERTS = {("PUT", "/api/v1/evaluations/harnesses/{name}")}
# Creating routes that refer to A's resources in their body.
CREATES: dict[tuple[str, str], Callable[[dict[str, str]], dict[str, Any]]] = {
    ("POST", "/api/v1/evaluations"): lambda r: {
        "versionId": r["version"],
        "harness": "ci",
        "status": "passed",
        "score": 1,
    },
    ("POST", "/api/v1/evaluations/trigger"): lambda r: {"versionId": r["version"], "harness": "ci"},
    ("POST", "/api/v1/deployments"): lambda r: {
        "promptId": r["prompt_id"],
        "name": unique("d"),
        "variants": [{"versionId": r["version"], "weight": 100}],
    },
    ("POST", "/api/v1/metrics/ingest"): lambda r: {
        "metrics": [{"versionId": r["version"], "type": "latency", "name": "ms", "value": 1}]
    },
}


class ProjectA:
    """Project A's resources, created on first use (only for resource types the spec has routes for)."""

    def __init__(self, client: httpx.Client, paths: set[str]) -> None:
        self.client = client
        self.paths = paths
        self.values: dict[str, str] = {}
        name = unique()
        prompt = client.post("/api/v1/prompts", json={"name": name, "template": "a {{x}}"})
        assert prompt.status_code == 201, prompt.text
        self.values.update(prompt=name, prompt_id=prompt.json()["id"])
        self.values["version"] = client.get(f"/api/v1/prompts/{name}/versions/1").json()["id"]
        assert client.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": 1}).status_code == 200

    def _create(self, path: str, body: dict[str, Any]) -> str:
        created = self.client.post(path, json=body)
        assert created.status_code in (201, 202), f"{path}: {created.text}"
        return str(created.json()["id"])

    def get(self, kind: str) -> str:
        if kind in self.values:
            return self.values[kind]
        if kind == "api-keys":
            value = str(create_key(self.client, scopes=["read"])["id"])
        elif kind == "evaluations":
            value = self._create("/api/v1/evaluations", CREATES[("POST", "/api/v1/evaluations")](self.values))
        elif kind == "deployments":
            value = self._create("/api/v1/deployments", CREATES[("POST", "/api/v1/deployments")](self.values))
        elif kind == "webhooks":
            value = self._create("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["*"]})
        elif kind == "harnesses":
            value = unique("h")
            self.values["harness_url"] = f"http://127.0.0.1:9/{value}"
            put = self.client.put(
                f"/api/v1/evaluations/harnesses/{value}", json={"url": self.values["harness_url"]}
            )
            assert put.status_code in (200, 201), put.text
        elif kind == "deliveries":
            hook = self.get("webhooks")
            assert self.client.post(f"/api/v1/webhooks/{hook}/test", json={}).status_code == 202
            deadline = time.monotonic() + 10
            while not (listed := self.client.get(f"/api/v1/webhooks/{hook}/deliveries").json()["data"]):
                assert time.monotonic() < deadline, "the test delivery never appeared"
                time.sleep(0.1)
            value = str(listed[0]["id"])
        else:
            raise AssertionError(
                f"no project-A resource for '{kind}': teach tests/integration/test_tenancy.py"
            )
        self.values[kind] = value
        return value

    def path(self, template: str) -> str:
        """Fill every path parameter with A's resource named by the literal segment before it."""
        segments = template.split("/")
        out = []
        for i, segment in enumerate(segments):
            if not segment.startswith("{"):
                out.append(segment)
                continue
            kind = segments[i - 1]
            if kind == "prompts":
                out.append(self.values["prompt"])
            elif kind == "versions":
                out.append("1" if segments[i - 2].startswith("{") else self.values["version"])
            elif kind == "tags":
                out.append("staging")
            else:
                out.append(self.get(kind))
        return "/".join(out)


@pytest.fixture(scope="module")
def spec(stack: Stack) -> dict[str, Any]:
    return httpx.get(f"{stack.base_url}/api/v1/docs/openapi.json").json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def intruder(api: httpx.Client) -> httpx.Client:
    """An admin key (every scope) of another project."""
    key = create_key(api, scopes=["admin"], project=unique("intruder"))
    return httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {key['key']}"}, timeout=30)


def test_another_projects_resources_are_not_found(
    api: httpx.Client, intruder: httpx.Client, spec: dict[str, Any]
) -> None:
    owner = ProjectA(api, set(spec["paths"]))
    failures: list[str] = []
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            method = method.upper()
            if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                continue
            if "{" in template and "x-required-scope" in operation:
                url = owner.path(template)
                make_body = BODIES.get((method, template))
                body = make_body(owner.values) if make_body else ({} if method in ("POST", "PUT") else None)
                status = intruder.request(method, url, json=body).status_code
                allowed = {404} if method == "GET" or make_body else {400, 404}
                if (method, template) in UPSERTS:
                    allowed = {200, 201}
                if status not in allowed:
                    failures.append(f"{method} {url} ({template}): {status}")
            elif (method, template) in CREATES:
                status = intruder.request(
                    method, template, json=CREATES[(method, template)](owner.values)
                ).status_code
                if status != 404:
                    failures.append(f"{method} {template} naming A's resources: {status}")
            elif method == "GET" and template != "/api/v1/audit-logs":
                # (The audit log echoes the intruder's own failed requests; test_audit covers it.)
                # Lists filtered by A's ids show nothing; unfiltered lists show none of A's resources.
                names = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
                params = {
                    k: v
                    for k, v in (
                        ("versionId", owner.values["version"]),
                        ("promptId", owner.values["prompt_id"]),
                    )
                    if k in names
                }
                listed = intruder.get(template, params=params)
                if listed.status_code == 200:
                    text = listed.text
                    leaked = [
                        v for v in owner.values.values() if v not in ("1",) and len(v) > 8 and v in text
                    ]
                    if leaked:
                        failures.append(f"GET {template} {params}: shows {leaked}")
                elif listed.status_code != 404:
                    failures.append(f"GET {template} {params}: {listed.status_code}")
    assert not failures, "\n".join(failures)
    # And A still has everything, untouched.
    prompt = api.get(f"/api/v1/prompts/{owner.values['prompt']}").json()
    assert prompt["description"] == ""
    assert prompt["tags"] == {"staging": 1}
    assert prompt["archived"] is False
    if "harnesses" in owner.values:
        harnesses = api.get("/api/v1/evaluations/harnesses").json()["data"]
        mine = next(h for h in harnesses if h["name"] == owner.values["harnesses"])
        assert mine["url"] == owner.values["harness_url"]
