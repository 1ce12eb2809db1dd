"""Helpers shared by the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from pvc.core.apikeys import generate_api_key, hash_api_key, key_prefix
from pvc.devstack import Stack

ClientFactory = Callable[..., httpx.Client]


def mint_key(
    stack: Stack, *, scopes: list[str], project: str | None = None, expires_at: datetime | None = None
) -> str:
    """A key made straight in the gateway's tables (the key-management API has its own tests)."""
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
