"""Helpers shared by the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from pvc.core.apikeys import generate_api_key, hash_api_key, key_prefix
from pvc.devstack import Stack
from pvc.devstack.ports import free_port
from pvc.devstack.stack import SERVICES

ClientFactory = Callable[..., httpx.Client]


def project_id(api: httpx.Client, name: str) -> str:
    """The id of project `name`, created through the API (admin key) when missing."""
    created = api.post("/api/v1/projects", json={"name": name})
    if created.status_code == 201:
        return str(created.json()["id"])
    assert created.status_code == 409, created.text
    cursor: str | None = None
    while True:
        listed = api.get("/api/v1/projects", params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert listed.status_code == 200, listed.text
        for project in listed.json()["data"]:
            if project["name"] == name:
                return str(project["id"])
        cursor = listed.json()["meta"]["nextCursor"]
        assert cursor, f"project {name} not found"


def create_key(
    api: httpx.Client,
    *,
    scopes: list[str],
    project: str | None = None,
    name: str | None = None,
    **extra: object,
) -> dict[str, object]:
    """Mint a key through POST /api/v1/api-keys with the admin client; returns the 201 body."""
    body: dict[str, object] = {
        "name": name or f"test-{'-'.join(scopes) or 'none'}"[:100],
        "scopes": scopes,
        **extra,
    }
    if project is not None:
        body["projectId"] = project_id(api, project)
    created = api.post("/api/v1/api-keys", json=body)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def mint_key(
    stack: Stack, *, scopes: list[str], project: str | None = None, expires_at: datetime | None = None
) -> str:
    """A key made straight in the gateway's tables: only for states the API refuses to create
    (an empty scope list, an expiry in the past)."""
    pepper = (Path(stack.data_dir) / "pepper").read_text().strip()
    key = generate_api_key()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        project_name = project or "default"
        conn.execute(
            "INSERT INTO gateway.projects (id, name, created_at) VALUES (%s, %s, now()) ON CONFLICT (name) DO NOTHING",
            (uuid.uuid4(), project_name),
        )
        row = conn.execute("SELECT id FROM gateway.projects WHERE name = %s", (project_name,)).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO gateway.api_keys (id, project_id, name, prefix, key_hash, scopes, expires_at, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                uuid.uuid4(),
                row[0],
                f"test-{'-'.join(scopes) or 'none'}",
                key_prefix(key),
                hash_api_key(pepper=pepper, key=key),
                scopes,
                expires_at,
                datetime.now(UTC),
            ),
        )
    return key


def unique(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "requestId"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert body["requestId"] == response.headers["x-request-id"]
    return body["error"]  # type: ignore[no-any-return]


def audit_rows(api: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    """GET /api/v1/audit-logs with `filters`. No waiting: a request's row is committed before its answer."""
    listed = api.get("/api/v1/audit-logs", params={"limit": 100, **filters})
    assert listed.status_code == 200, listed.text
    rows: list[dict[str, Any]] = listed.json()["data"]
    return rows


@contextmanager
def gateway_replica(stack: Stack, *, name: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """One more gateway process on the stack's database, NATS and services, with `env` on top; yields its
    URL once /ready is 200. Reached directly, not through Envoy; its log is `logs/<name>.log`."""
    port = free_port()
    full_env = {
        **os.environ,
        "DATABASE_URL": stack.database_url,
        "NATS_URL": stack.nats_url,
        "PVC_ENV": "dev",
        "PVC_INTERNAL_TOKEN": stack.internal_token,
        "PVC_API_KEY_PEPPER": (Path(stack.data_dir) / "pepper").read_text().strip(),
        **{f"PVC_{service.upper()}_ADDR": stack.service_addr(service) for service in SERVICES},
        "PVC_GATEWAY_ADDR": f"127.0.0.1:{port}",
        "PVC_LOG_LEVEL": "warning",
        **(env or {}),
    }
    log = (Path(stack.data_dir) / "logs" / f"{name}.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "pvc.gateway"], env=full_env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, f"{name} exited"
            assert time.monotonic() < deadline, f"{name} never became ready"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
