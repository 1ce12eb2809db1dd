"""The HTTP contract through Envoy: auth, scopes, error shape, request ids, body limits, docs, health."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pvc.devstack import Stack

from .support import ClientFactory, assert_error, unique


def test_health_and_ready(anon: httpx.Client) -> None:
    health = anon.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    datetime.fromisoformat(health.json()["timestamp"])
    ready = anon.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"] == {
        "gateway": "ok",
        "database": "ok",
        "nats": "ok",
        "registry": "ok",
        "evals": "ok",
        "webhooks": "ok",
        "deployments": "ok",
    }


def test_metrics_exposes_prometheus_text(api: httpx.Client, anon: httpx.Client) -> None:
    api.get("/api/v1/prompts")
    metrics = anon.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'pvc_http_requests_total{method="GET",route="/api/v1/prompts",status="200"}' in metrics.text


def test_docs_served_locally(anon: httpx.Client) -> None:
    page = anon.get("/api/v1/docs")
    assert page.status_code == 200
    assert "/api/v1/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert anon.get("/api/v1/docs/assets/swagger-ui-bundle.js").status_code == 200
    spec = anon.get("/api/v1/docs/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/prompts", "/api/v1/prompts/{prompt}/versions", "/api/v1/prompts/{prompt}/diff"):
        assert path in spec["paths"]
    assert spec["paths"]["/api/v1/prompts"]["post"]["x-required-scope"] == "prompts:write"
    yaml_spec = anon.get("/api/v1/docs/openapi.yaml")
    assert yaml_spec.status_code == 200
    assert "openapi:" in yaml_spec.text


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer pvc_nope", "Basic dXNlcjpwYXNz", "Bearer not-a-pvc-key"],
)
def test_missing_or_invalid_key_is_401(anon: httpx.Client, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    assert_error(anon.get("/api/v1/prompts", headers=headers), 401, "UNAUTHORIZED")


def test_expired_key_is_401(client_for: ClientFactory) -> None:
    expired = client_for(scopes=["admin"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert_error(expired.get("/api/v1/prompts"), 401, "UNAUTHORIZED")


def test_scopes_are_enforced(api: httpx.Client, client_for: ClientFactory) -> None:
    name = unique()
    reader = client_for(scopes=["read"])
    assert_error(reader.post("/api/v1/prompts", json={"name": name}), 403, "FORBIDDEN")
    assert_error(api.get(f"/api/v1/prompts/{name}"), 404, "NOT_FOUND")
    writer = client_for(scopes=["prompts:write"])
    assert writer.post("/api/v1/prompts", json={"name": name, "template": "x"}).status_code == 201
    assert_error(writer.get(f"/api/v1/prompts/{name}"), 403, "FORBIDDEN")
    assert reader.get(f"/api/v1/prompts/{name}").status_code == 200
    nothing = client_for(scopes=[])
    assert_error(nothing.get("/api/v1/prompts"), 403, "FORBIDDEN")


def test_request_id_is_echoed_or_generated(api: httpx.Client) -> None:
    given = api.get("/api/v1/prompts", headers={"X-Request-Id": "trace-abc_123"})
    assert given.headers["x-request-id"] == "trace-abc_123"
    error = api.get("/api/v1/prompts/does-not-exist", headers={"X-Request-Id": "req-404"})
    assert error.json()["requestId"] == "req-404"
    generated = api.get("/api/v1/prompts", headers={"X-Request-Id": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    uuid.UUID(generated.headers["x-request-id"])


def test_unknown_route_and_method(api: httpx.Client, anon: httpx.Client) -> None:
    assert_error(api.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert_error(anon.get("/nowhere"), 404, "NOT_FOUND")
    response = api.patch("/api/v1/prompts")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": 5}, "name"),
        ({"name": "Has Caps"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "unknown": 1}, "unknown"),
        ({"name": "ok", "metadata": []}, "metadata"),
        ({"name": "ok", "template": ""}, "template"),
        ({"name": "ok", "template": "x" * 100_001}, "template"),
        ({"name": "ok", "variables": "name"}, "variables"),
        ({"name": "ok", "description": 7}, "description"),
    ],
)
def test_bad_prompt_bodies_are_400_and_change_nothing(
    api: httpx.Client, body: dict[str, object], field: str
) -> None:
    before = api.get("/api/v1/prompts", params={"limit": 100}).json()["data"]
    error = assert_error(api.post("/api/v1/prompts", json=body), 400, "VALIDATION_ERROR")
    assert any(key.startswith(field) for key in error["details"]["fields"]), error  # type: ignore[index,union-attr]
    assert api.get("/api/v1/prompts", params={"limit": 100}).json()["data"] == before


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[]",
        b"null",
        b'"text"',
        b'{"template": null}',
        b'{"template": ["a"]}',
        b'{"template":"ok","config":[]}',
    ],
)
def test_malformed_version_bodies(api: httpx.Client, raw: bytes) -> None:
    name = unique()
    api.post("/api/v1/prompts", json={"name": name})
    response = api.post(
        f"/api/v1/prompts/{name}/versions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "VALIDATION_ERROR")
    assert api.get(f"/api/v1/prompts/{name}").json()["latestVersion"] is None


def test_variables_must_name_themselves(api: httpx.Client) -> None:
    name = unique()
    api.post("/api/v1/prompts", json={"name": name})
    response = api.post(
        f"/api/v1/prompts/{name}/versions", json={"template": "x", "variables": [{"desc": "no name"}]}
    )
    assert_error(response, 400, "VALIDATION_ERROR")


def test_non_json_content_type_is_400(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/prompts", content=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "JSON" in str(error["message"])


def test_oversize_body_is_413(api: httpx.Client) -> None:
    name = unique()
    big = {"name": name, "description": "x", "metadata": {"blob": "y" * (1024 * 1024 + 10)}}
    assert_error(api.post("/api/v1/prompts", json=big), 413, "PAYLOAD_TOO_LARGE")

    def chunks() -> object:
        yield b'{"name": "' + name.encode() + b'", "metadata": {"blob": "'
        for _ in range(20):
            yield b"z" * 65536
        yield b'"}}'

    chunked = api.post("/api/v1/prompts", content=chunks(), headers={"Content-Type": "application/json"})  # type: ignore[arg-type]
    assert_error(chunked, 413, "PAYLOAD_TOO_LARGE")
    assert_error(api.get(f"/api/v1/prompts/{name}"), 404, "NOT_FOUND")


def test_registry_down_gives_503_and_ready_follows(
    stack: Stack, api: httpx.Client, anon: httpx.Client
) -> None:
    name = unique()
    stack.stop_process("registry")
    try:
        ready = anon.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not_ready"
        assert ready.json()["checks"]["registry"] == "unavailable"
        started = datetime.now(UTC)
        down = api.post("/api/v1/prompts", json={"name": name})
        assert_error(down, 503, "UNAVAILABLE")
        assert datetime.now(UTC) - started < timedelta(seconds=10)
    finally:
        stack.start_process("registry")
    stack.wait_ready(60)
    assert anon.get("/ready").status_code == 200
    assert_error(api.get(f"/api/v1/prompts/{name}"), 404, "NOT_FOUND")
    assert api.post("/api/v1/prompts", json={"name": name}).status_code == 201


@pytest.mark.parametrize(
    "url",
    ["/api/v1/prompts?q=%00", "/api/v1/audit-logs?action=a%00b", "/api/v1/prompts/x/versions/%C2%B2"],
)
def test_unstorable_input_is_4xx_not_500(api: httpx.Client, url: str) -> None:
    response = api.get(url)
    assert 400 <= response.status_code < 500, response.text
    body = {"name": unique(), "metadata": {"nul": "a\u0000b"}}
    assert_error(api.post("/api/v1/prompts", json=body), 400, "VALIDATION_ERROR")
