"""Every operation of the live OpenAPI spec against every scope: a new route without a scope rule fails.

For each operation: a key holding exactly its `x-required-scope` gets past auth (anything but 401/403:
dummy path parameters and empty bodies give 400/404, which is fine); a key with every *other* scope
except `admin` gets 403; no key gets 401. Operations without `x-required-scope` must be listed in
PUBLIC (documented as public in DESIGN.md section 4).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pvc.devstack import Stack

from .support import create_key

SCOPES = [
    "read",
    "prompts:write",
    "promote",
    "promote:override",
    "evals:write",
    "deployments:write",
    "metrics:write",
    "webhooks:admin",
    "keys:admin",
    "admin",
]
# Signature-authenticated by the harness secret, not by an API key.
PUBLIC = {("POST", "/api/v1/evaluations/{}/callback")}
DUMMY_ID = "00000000-0000-4000-8000-000000000000"


def _spec(stack: Stack) -> dict[str, Any]:
    response = httpx.get(f"{stack.base_url}/api/v1/docs/openapi.json", timeout=30)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


def _public(method: str, path: str) -> bool:
    return (method, re.sub(r"\{[^}]+\}", "{}", path)) in PUBLIC


def _concrete(path: str) -> str:
    # A UUID names no resource of any type, and is a valid id, name or version reference.
    return re.sub(r"\{[^}]+\}", DUMMY_ID, path)


@pytest.fixture(scope="module")
def spec(stack: Stack) -> dict[str, Any]:
    return _spec(stack)


@pytest.fixture(scope="module")
def keys_by_scope(api: httpx.Client) -> dict[str, str]:
    """One key per scope, plus per scope a key with every other scope except admin."""
    keys: dict[str, str] = {}
    for scope in SCOPES:
        keys[scope] = str(create_key(api, scopes=[scope])["key"])
        others = [s for s in SCOPES if s not in (scope, "admin")]
        keys[f"all-but:{scope}"] = str(create_key(api, scopes=others)["key"])
    return keys


def test_every_operation_declares_a_scope(spec: dict[str, Any]) -> None:
    missing = [
        (method, path)
        for method, path, operation in _operations(spec)
        if "x-required-scope" not in operation and not _public(method, path)
    ]
    assert not missing, f"operations without x-required-scope (add require(...) to them): {missing}"
    unknown = {op["x-required-scope"] for _, _, op in _operations(spec) if "x-required-scope" in op} - set(
        SCOPES
    )
    assert not unknown


def test_every_scope_against_every_operation(
    stack: Stack, spec: dict[str, Any], keys_by_scope: dict[str, str]
) -> None:
    failures: list[str] = []
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        for method, path, operation in _operations(spec):
            if _public(method, path):
                continue
            scope = operation["x-required-scope"]
            url = _concrete(path)
            body = {} if method in ("POST", "PUT", "PATCH") else None

            def call(key: str | None, method: str = method, url: str = url, body: Any = body) -> int:
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                return client.request(method, url, json=body, headers=headers).status_code

            if (status := call(None)) != 401:
                failures.append(f"{method} {path} without a key: {status}, expected 401")
            if (status := call(keys_by_scope[scope])) in (401, 403) or status >= 500:
                failures.append(f"{method} {path} with '{scope}': {status}")
            if scope != "admin" and (status := call(keys_by_scope["admin"])) in (401, 403):
                failures.append(f"{method} {path} with 'admin': {status}")
            if (status := call(keys_by_scope[f"all-but:{scope}"])) != 403:
                failures.append(f"{method} {path} with every scope but '{scope}': {status}, expected 403")
            for other in SCOPES:
                if other not in (scope, "admin") and (status := call(keys_by_scope[other])) != 403:
                    failures.append(f"{method} {path} with only '{other}' (needs '{scope}'): {status}")
    assert not failures, "\n".join(failures)
