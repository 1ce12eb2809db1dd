"""The audit log: a row for every mutating route (with before/after), every 401/403, append-only, committed
before the answer."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from pvc.devstack import Stack

from .gating import wait_for
from .support import assert_error, audit_rows, create_key, project_id, unique

DUMMY_ID = "00000000-0000-4000-8000-000000000000"


def _one(api: httpx.Client, **filters: str) -> dict[str, Any]:
    rows = audit_rows(api, **filters)
    assert len(rows) == 1, rows
    return rows[0]


def test_every_mutating_operation_is_audited(api: httpx.Client, stack: Stack) -> None:
    """Table-driven over the spec: each non-GET operation leaves a row, even when it fails."""
    spec = httpx.get(f"{stack.base_url}/api/v1/docs/openapi.json").json()
    missing = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if (
                method not in ("post", "put", "patch", "delete")
                or operation.get("x-required-scope") == "read"
            ):
                continue
            request_id = f"audit-{uuid.uuid4().hex}"
            url = re.sub(r"\{[^}]+\}", DUMMY_ID, path)
            body = {} if method != "delete" else None
            api.request(method.upper(), url, json=body, headers={"X-Request-Id": request_id})
            rows = audit_rows(api, requestId=request_id)
            if len(rows) != 1 or rows[0]["action"].startswith(method):
                missing.append(f"{method.upper()} {path}: {rows}")
    assert not missing, "\n".join(missing)


def test_prompt_changes_have_before_and_after(api: httpx.Client) -> None:
    author = create_key(api, scopes=["read", "prompts:write"], name=unique("author"))
    writer = httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {author['key']}"})
    name = unique()
    created = writer.post("/api/v1/prompts", json={"name": name, "description": "one", "template": "v1"})
    assert created.status_code == 201
    prompt_id = created.json()["id"]

    row = _one(api, resourceId=prompt_id, action="prompt.create")
    assert row["resourceType"] == "prompt"
    assert row["actorId"] == author["id"]
    assert row["actorName"] == author["name"]
    assert row["outcome"] == "success"
    assert row["before"] is None
    assert row["after"]["description"] == "one"
    assert row["requestId"] == created.headers["x-request-id"]
    assert row["ip"]  # Envoy's view of us (for a loopback peer Envoy appends its own address)

    assert writer.put(f"/api/v1/prompts/{name}", json={"description": "two"}).status_code == 200
    row = _one(api, resourceId=prompt_id, action="prompt.update")
    assert row["before"]["description"] == "one"
    assert row["after"]["description"] == "two"

    version = writer.post(f"/api/v1/prompts/{name}/versions", json={"template": "v2"})
    assert version.status_code == 201
    row = _one(api, resourceId=version.json()["id"], action="version.create")
    assert row["resourceType"] == "version"
    assert row["after"]["number"] == 2

    assert writer.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": 1}).status_code == 200
    assert writer.post(f"/api/v1/prompts/{name}/tags/staging", json={"version": 2}).status_code == 200
    rows = audit_rows(api, resourceId=f"{name}/staging", action="tag.set")
    newest, oldest = rows
    assert oldest["before"] is None
    assert oldest["after"]["versionNumber"] == 1
    assert newest["before"]["versionNumber"] == 1
    assert newest["after"]["versionNumber"] == 2

    assert writer.delete(f"/api/v1/prompts/{name}/tags/staging").status_code == 204
    row = _one(api, resourceId=f"{name}/staging", action="tag.delete")
    assert row["before"]["versionNumber"] == 2
    assert row["after"] is None

    # A refused change is recorded too, as a failure with the error.
    assert_error(
        writer.post(f"/api/v1/prompts/{name}/tags/production", json={"version": 1}), 409, "PROTECTED_TAG"
    )
    row = _one(api, resourceId=f"{name}/production", action="tag.set")
    assert row["outcome"] == "failure"
    assert row["after"]["error"]["code"] == "PROTECTED_TAG"

    assert writer.delete(f"/api/v1/prompts/{name}").status_code == 200
    row = _one(api, resourceId=prompt_id, action="prompt.archive")
    assert row["before"]["archived"] is False
    assert row["after"]["archived"] is True


def test_key_rows_never_hold_secrets(api: httpx.Client, stack: Stack) -> None:
    created = create_key(api, scopes=["read"], name=unique("serving"))
    row = _one(api, resourceId=str(created["id"]), action="api_key.create")
    assert row["resourceType"] == "api_key"
    assert row["after"]["key"] == "[redacted]"
    assert row["after"]["prefix"] == created["prefix"]

    assert api.delete(f"/api/v1/api-keys/{created['id']}").status_code == 204
    row = _one(api, resourceId=str(created["id"]), action="api_key.revoke")
    assert row["before"]["revokedAt"] is None
    assert row["after"]["revokedAt"] is not None

    secret = str(created["key"])
    with psycopg.connect(stack.database_url) as conn:
        dump = conn.execute(
            "SELECT coalesce(string_agg(a::text, ''), '') FROM gateway.audit_logs a"
        ).fetchone()
    assert dump is not None
    assert secret not in dump[0]
    assert stack.admin_key not in dump[0]
    for log in Path(stack.data_dir, "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert secret not in text, log
        assert stack.admin_key not in text, log


def test_auth_failures_are_audited(api: httpx.Client, anon: httpx.Client) -> None:
    request_id = f"denied-{uuid.uuid4().hex}"
    assert_error(
        anon.get("/api/v1/prompts", headers={"Authorization": "Bearer pvc_nope", "X-Request-Id": request_id}),
        401,
        "UNAUTHORIZED",
    )
    row = _one(api, requestId=request_id)
    assert row["outcome"] == "denied"
    assert row["actorId"] is None
    assert row["action"] == "prompt.list"
    assert row["after"]["error"]["code"] == "UNAUTHORIZED"
    assert "pvc_nope" not in str(row)

    reader = create_key(api, scopes=["read"])
    request_id = f"denied-{uuid.uuid4().hex}"
    response = anon.post(
        "/api/v1/prompts",
        json={"name": unique()},
        headers={"Authorization": f"Bearer {reader['key']}", "X-Request-Id": request_id},
    )
    assert_error(response, 403, "FORBIDDEN")
    row = _one(api, requestId=request_id)
    assert row["outcome"] == "denied"
    assert row["actorId"] == reader["id"]
    assert row["action"] == "prompt.create"


def test_client_ip_from_trusted_proxy_only(api: httpx.Client, stack: Stack) -> None:
    # Through Envoy: a client-written X-Forwarded-For is ignored, Envoy appends the real peer.
    request_id = f"ip-{uuid.uuid4().hex}"
    api.post(
        "/api/v1/prompts",
        json={"name": unique()},
        headers={"X-Request-Id": request_id, "X-Forwarded-For": "203.0.113.7"},
    )
    spoofed = _one(api, requestId=request_id)["ip"]
    assert spoofed != "203.0.113.7"
    request_id = f"ip-{uuid.uuid4().hex}"
    api.post("/api/v1/prompts", json={"name": unique()}, headers={"X-Request-Id": request_id})
    assert _one(api, requestId=request_id)["ip"] == spoofed
    # Straight from a trusted proxy (127.0.0.1 is one by default): its X-Forwarded-For is believed.
    request_id = f"ip-{uuid.uuid4().hex}"
    httpx.post(
        f"http://{stack.service_addr('gateway')}/api/v1/prompts",
        json={"name": unique()},
        headers={**api.headers, "X-Request-Id": request_id, "X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
    )
    assert _one(api, requestId=request_id)["ip"] == "203.0.113.9"


def test_filters_and_pagination(api: httpx.Client) -> None:
    name = unique()
    assert api.post("/api/v1/prompts", json={"name": name, "template": "a"}).status_code == 201
    for description in ("b", "c", "d"):
        assert api.put(f"/api/v1/prompts/{name}", json={"description": description}).status_code == 200
    prompt_id = api.get(f"/api/v1/prompts/{name}").json()["id"]
    rows = audit_rows(api, resourceId=prompt_id)
    assert [r["action"] for r in rows] == ["prompt.update"] * 3 + ["prompt.create"]
    assert [r["after"]["description"] for r in rows[:3]] == ["d", "c", "b"]

    first = api.get("/api/v1/audit-logs", params={"resourceId": prompt_id, "limit": 3})
    assert [r["id"] for r in first.json()["data"]] == [r["id"] for r in rows[:3]]
    second = api.get(
        "/api/v1/audit-logs",
        params={"resourceId": prompt_id, "limit": 3, "cursor": first.json()["meta"]["nextCursor"]},
    )
    assert [r["id"] for r in second.json()["data"]] == [rows[3]["id"]]
    assert second.json()["meta"]["nextCursor"] is None

    window = {"from": rows[2]["at"], "to": rows[0]["at"], "resourceId": prompt_id}
    assert [r["id"] for r in api.get("/api/v1/audit-logs", params=window).json()["data"]] == [
        rows[1]["id"],
        rows[2]["id"],
    ]
    only_create = api.get(
        "/api/v1/audit-logs",
        params={"resourceType": "prompt", "action": "prompt.create", "resourceId": prompt_id},
    )
    assert len(only_create.json()["data"]) == 1
    assert_error(api.get("/api/v1/audit-logs", params={"from": "yesterday"}), 400, "VALIDATION_ERROR")
    assert_error(
        api.get("/api/v1/audit-logs", params={"from": "2030-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"}),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(api.get("/api/v1/audit-logs", params={"outcome": "maybe"}), 400, "VALIDATION_ERROR")


def test_projects_see_only_their_own_audit_rows(api: httpx.Client) -> None:
    other = create_key(api, scopes=["keys:admin"], project=unique("proj"))
    name = unique()
    assert api.post("/api/v1/prompts", json={"name": name}).status_code == 201
    prompt_id = api.get(f"/api/v1/prompts/{name}").json()["id"]
    assert audit_rows(api, resourceId=prompt_id)
    foreign = httpx.get(
        f"{api.base_url}/api/v1/audit-logs",
        params={"resourceId": prompt_id},
        headers={"Authorization": f"Bearer {other['key']}"},
    )
    assert foreign.status_code == 200
    assert foreign.json()["data"] == []
    # The other project's key creation is in its own log.
    rows = httpx.get(
        f"{api.base_url}/api/v1/audit-logs", headers={"Authorization": f"Bearer {other['key']}"}
    ).json()["data"]
    assert all(r["resourceId"] != prompt_id for r in rows)
    assert project_id(api, "default")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE gateway.audit_logs SET outcome = 'success'",
        "DELETE FROM gateway.audit_logs",
        "TRUNCATE gateway.audit_logs",
    ],
)
def test_audit_log_is_append_only_in_the_database(api: httpx.Client, stack: Stack, statement: str) -> None:
    assert api.post("/api/v1/prompts", json={"name": unique()}).status_code == 201
    audit_rows(api)
    with (
        psycopg.connect(stack.database_url) as conn,
        pytest.raises(psycopg.errors.RaiseException, match="append-only"),
    ):
        conn.execute(statement)


# -- group commit: the row is committed before the answer ---------------------------------------------


def _rows_in_db(stack: Stack, request_id: str) -> list[tuple[str, str]]:
    """Straight from PostgreSQL, right now: no API, no waiting."""
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT action, outcome FROM gateway.audit_logs WHERE request_id = %s", (request_id,)
        ).fetchall()
    return [(str(action), str(outcome)) for action, outcome in rows]


def _metric(stack: Stack, name: str) -> float:
    text = httpx.get(f"{stack.base_url}/metrics").text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"{name} ")]
    return values[0] if values else 0.0


def test_the_audit_row_is_committed_before_the_answer(
    api: httpx.Client, anon: httpx.Client, stack: Stack
) -> None:
    """No sleep, no polling: whatever the client was told, the audit log already holds."""
    for _ in range(5):
        request_id = f"commit-{uuid.uuid4().hex}"
        created = api.post("/api/v1/prompts", json={"name": unique()}, headers={"X-Request-Id": request_id})
        assert created.status_code == 201
        assert _rows_in_db(stack, request_id) == [("prompt.create", "success")]
    request_id = f"commit-{uuid.uuid4().hex}"
    refused = api.post(
        "/api/v1/prompts/no-such-prompt/versions",
        json={"template": "x"},
        headers={"X-Request-Id": request_id},
    )
    assert refused.status_code == 404
    assert _rows_in_db(stack, request_id) == [("version.create", "failure")]
    request_id = f"commit-{uuid.uuid4().hex}"
    denied = anon.post("/api/v1/prompts", json={"name": unique()}, headers={"X-Request-Id": request_id})
    assert denied.status_code == 401
    assert _rows_in_db(stack, request_id) == [("prompt.create", "denied")]


def test_concurrent_writers_each_find_their_row_on_return(api: httpx.Client, stack: Stack) -> None:
    """Many requests share commits; each still returns only once its own row is in."""

    def one(_: int) -> list[tuple[str, str]]:
        request_id = f"group-{uuid.uuid4().hex}"
        with httpx.Client(base_url=api.base_url, headers=api.headers, timeout=30) as client:
            response = client.post(
                "/api/v1/prompts", json={"name": unique()}, headers={"X-Request-Id": request_id}
            )
            assert response.status_code == 201, response.text
        return _rows_in_db(stack, request_id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(one, range(40)))
    assert found == [[("prompt.create", "success")]] * 40


def test_a_failing_audit_write_still_answers_and_the_row_follows(api: httpx.Client, stack: Stack) -> None:
    """The audit table refuses inserts for a while (as when its database is down): the committed change
    is still answered truthfully, the failure is counted, and the row is written once inserts work again."""
    name = unique()
    request_id = f"down-{uuid.uuid4().hex}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION gateway.test_audit_down() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'audit store down (test)'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER test_audit_down BEFORE INSERT ON gateway.audit_logs"
            " FOR EACH STATEMENT EXECUTE FUNCTION gateway.test_audit_down()"
        )
        try:
            failures = _metric(stack, "pvc_audit_write_failures_total")
            created = api.post("/api/v1/prompts", json={"name": name}, headers={"X-Request-Id": request_id})
            assert created.status_code == 201, created.text
            assert api.get(f"/api/v1/prompts/{name}").status_code == 200
            assert _rows_in_db(stack, request_id) == []
            assert _metric(stack, "pvc_audit_write_failures_total") > failures
            assert _metric(stack, "pvc_audit_queue_rows") >= 1
        finally:
            conn.execute("DROP TRIGGER test_audit_down ON gateway.audit_logs")
            conn.execute("DROP FUNCTION gateway.test_audit_down()")
    # Retried with backoff (at most 5 s apart): the queued row arrives by itself.
    wait_for(lambda: _rows_in_db(stack, request_id), timeout=15, interval=0.1)
    assert _rows_in_db(stack, request_id) == [("prompt.create", "success")]
    # And answers wait for their rows again.
    request_id = f"back-{uuid.uuid4().hex}"
    assert (
        api.post("/api/v1/prompts", json={"name": unique()}, headers={"X-Request-Id": request_id}).status_code
        == 201
    )
    assert _rows_in_db(stack, request_id) == [("prompt.create", "success")]
