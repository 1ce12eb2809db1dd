"""API keys and projects: minting, listing, minting limits, expiry, revocation on every replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from pvc.core.apikeys import has_valid_checksum
from pvc.devstack import Stack

from .support import ClientFactory, assert_error, create_key, gateway_replica, project_id, unique


def bearer(key: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_create_list_get_and_revoke(api: httpx.Client, anon: httpx.Client) -> None:
    created = create_key(api, scopes=["read", "prompts:write"], name=unique("ci"))
    key = str(created["key"])
    assert key.startswith("pvc_")
    assert has_valid_checksum(key)
    assert created["prefix"] == key[:12]
    assert created["scopes"] == ["read", "prompts:write"]
    assert created["expiresAt"] is None
    assert created["revokedAt"] is None
    assert set(created) >= {"id", "name", "prefix", "scopes", "expiresAt", "rateLimitPerSecond", "projectId"}

    assert anon.get("/api/v1/prompts", headers=bearer(key)).status_code == 200

    one = api.get(f"/api/v1/api-keys/{created['id']}")
    assert one.status_code == 200
    assert "key" not in one.json()
    # The secret is shown once: never in a list, never in a single read.
    listed = api.get("/api/v1/api-keys", params={"limit": 100})
    assert listed.status_code == 200
    assert key not in listed.text
    ours = next(k for k in listed.json()["data"] if k["id"] == created["id"])
    assert "key" not in ours
    # lastUsedAt is written in the background (at most once a minute per key and replica).
    deadline = time.monotonic() + 5
    while api.get(f"/api/v1/api-keys/{created['id']}").json()["lastUsedAt"] is None:
        assert time.monotonic() < deadline, "lastUsedAt never set"
        time.sleep(0.1)

    assert api.delete(f"/api/v1/api-keys/{created['id']}").status_code == 204
    assert_error(anon.get("/api/v1/prompts", headers=bearer(key)), 401, "UNAUTHORIZED")
    assert api.get(f"/api/v1/api-keys/{created['id']}").json()["revokedAt"] is not None
    # Revoking again is harmless.
    assert api.delete(f"/api/v1/api-keys/{created['id']}").status_code == 204


def test_key_is_stored_only_as_prefix_and_hmac(api: httpx.Client, stack: Stack) -> None:
    created = create_key(api, scopes=["read"])
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT prefix, key_hash, api_keys::text FROM gateway.api_keys WHERE id = %s", (created["id"],)
        ).fetchone()
    assert row is not None
    assert row[0] == created["prefix"]
    assert len(row[1]) == 64
    assert str(created["key"]) not in row[2]


def test_list_is_paginated(api: httpx.Client) -> None:
    for _ in range(3):
        create_key(api, scopes=["read"])
    first = api.get("/api/v1/api-keys", params={"limit": 2})
    assert first.status_code == 200
    assert len(first.json()["data"]) == 2
    cursor = first.json()["meta"]["nextCursor"]
    assert cursor
    second = api.get("/api/v1/api-keys", params={"limit": 2, "cursor": cursor})
    assert second.status_code == 200
    assert not {k["id"] for k in first.json()["data"]} & {k["id"] for k in second.json()["data"]}
    assert_error(api.get("/api/v1/api-keys", params={"cursor": "garbage"}), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["root"]}, "scopes.0"),
        ({"name": "x", "scopes": ["read"], "expiresAt": "2999-01-01T00:00:00"}, "expiresAt"),
        ({"name": "x", "scopes": ["read"], "expiresAt": "2000-01-01T00:00:00Z"}, "expiresAt"),
        ({"name": "x", "scopes": ["read"], "projectId": "nope"}, "projectId"),
        ({"name": "x", "scopes": ["read"], "rateLimitPerSecond": -1}, "rateLimitPerSecond"),
        ({"name": "x", "scopes": ["read"], "secret": "y"}, "secret"),
    ],
)
def test_bad_key_requests_are_400(api: httpx.Client, body: dict[str, object], field: str) -> None:
    error = assert_error(api.post("/api/v1/api-keys", json=body), 400, "VALIDATION_ERROR")
    assert field in error["details"]["fields"], error  # type: ignore[index]


def test_unknown_project_is_404(api: httpx.Client) -> None:
    body = {"name": "x", "scopes": ["read"], "projectId": "00000000-0000-4000-8000-000000000000"}
    assert_error(api.post("/api/v1/api-keys", json=body), 404, "NOT_FOUND")


def test_minting_limits(api: httpx.Client, client_for: ClientFactory) -> None:
    keys_admin = client_for(scopes=["keys:admin", "read"])
    # Only scopes it holds itself.
    denied = assert_error(
        keys_admin.post("/api/v1/api-keys", json={"name": "x", "scopes": ["admin"]}), 403, "FORBIDDEN"
    )
    assert denied["details"] == {"missingScopes": ["admin"]}
    assert_error(
        keys_admin.post("/api/v1/api-keys", json={"name": "x", "scopes": ["read", "promote"]}),
        403,
        "FORBIDDEN",
    )
    ok = keys_admin.post("/api/v1/api-keys", json={"name": "x", "scopes": ["read"]})
    assert ok.status_code == 201
    # Not in another project, and no custom rate limit (both admin-only).
    other = project_id(api, unique("proj"))
    assert_error(
        keys_admin.post("/api/v1/api-keys", json={"name": "x", "scopes": ["read"], "projectId": other}),
        403,
        "FORBIDDEN",
    )
    assert_error(
        keys_admin.post("/api/v1/api-keys", json={"name": "x", "scopes": ["read"], "rateLimitPerSecond": 5}),
        403,
        "FORBIDDEN",
    )
    # Nor revoke a key stronger than itself.
    admin_key = create_key(api, scopes=["admin"])
    assert_error(keys_admin.delete(f"/api/v1/api-keys/{admin_key['id']}"), 403, "FORBIDDEN")
    # Projects are admin-only.
    assert_error(keys_admin.post("/api/v1/projects", json={"name": unique("p")}), 403, "FORBIDDEN")


def test_admin_creates_projects_and_keys_in_them(api: httpx.Client, anon: httpx.Client) -> None:
    name = unique("team")
    created = api.post("/api/v1/projects", json={"name": name})
    assert created.status_code == 201
    assert set(created.json()) == {"id", "name", "createdAt"}
    assert_error(api.post("/api/v1/projects", json={"name": name}), 409, "CONFLICT")
    assert_error(api.post("/api/v1/projects", json={"name": "Not Valid"}), 400, "VALIDATION_ERROR")
    key = create_key(api, scopes=["keys:admin"], project=name)
    assert key["projectId"] == created.json()["id"]
    # The new project's key sees only its own project's keys.
    listed = anon.get("/api/v1/api-keys", headers=bearer(key["key"]))
    assert [k["id"] for k in listed.json()["data"]] == [key["id"]]
    # ... and cannot revoke keys of another project.
    mine = create_key(api, scopes=["read"])
    assert_error(anon.delete(f"/api/v1/api-keys/{mine['id']}", headers=bearer(key["key"])), 404, "NOT_FOUND")


def test_key_expires(api: httpx.Client, anon: httpx.Client) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    created = create_key(api, scopes=["read"], expiresAt=expires.isoformat())
    assert abs(datetime.fromisoformat(str(created["expiresAt"])) - expires) < timedelta(milliseconds=1)
    assert anon.get("/api/v1/prompts", headers=bearer(created["key"])).status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    assert_error(anon.get("/api/v1/prompts", headers=bearer(created["key"])), 401, "UNAUTHORIZED")


# -- revocation on every replica -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_gateway(stack: Stack) -> Iterator[str]:
    """Another gateway replica on the same database and NATS, reached directly (not through Envoy)."""
    with gateway_replica(stack, name="gateway-replica-2") as url:
        time.sleep(0.5)  # its api_key.* subscription is made right after NATS connects
        yield url


def test_revocation_reaches_every_replica_within_one_second(
    api: httpx.Client, anon: httpx.Client, second_gateway: str
) -> None:
    created = create_key(api, scopes=["read"])
    headers = bearer(created["key"])
    # Both replicas have the key cached (replica 2 for 30 s: it relies on the event).
    assert anon.get("/api/v1/prompts", headers=headers).status_code == 200
    assert httpx.get(f"{second_gateway}/api/v1/prompts", headers=headers).status_code == 200

    assert api.delete(f"/api/v1/api-keys/{created['id']}").status_code == 204
    revoked_at = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < 2 and time.monotonic() - revoked_at < 3:
        for name, url in (("envoy", str(anon.base_url)), ("replica-2", second_gateway)):
            if name not in refused and httpx.get(f"{url}/api/v1/prompts", headers=headers).status_code == 401:
                refused[name] = time.monotonic() - revoked_at
        time.sleep(0.02)
    assert set(refused) == {"envoy", "replica-2"}, refused
    assert max(refused.values()) < 1.0, refused
