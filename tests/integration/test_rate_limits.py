"""Rate limits: a token bucket per key (a key's own rateLimitPerSecond), 429 with Retry-After and
RateLimit-* headers, recovery after Retry-After, infrastructure routes exempt."""

from __future__ import annotations

import time

import httpx

from .support import assert_error, create_key


def test_key_limit_headers_429_and_recovery(api: httpx.Client) -> None:
    # 2/s keeps the default 10 s burst ratio: a bucket of 20.
    created = create_key(api, scopes=["read"], rateLimitPerSecond=2)
    assert created["rateLimitPerSecond"] == 2
    client = httpx.Client(
        base_url=api.base_url, headers={"Authorization": f"Bearer {created['key']}"}, timeout=30
    )
    first = client.get("/api/v1/prompts")
    assert first.status_code == 200
    assert first.headers["ratelimit-limit"] == "20"
    assert int(first.headers["ratelimit-remaining"]) == 19
    assert int(first.headers["ratelimit-reset"]) >= 1

    statuses = []
    limited = None
    for _ in range(40):
        response = client.get("/api/v1/prompts")
        statuses.append(response.status_code)
        if response.status_code == 429:
            limited = response
            break
    assert limited is not None, statuses
    assert_error(limited, 429, "RATE_LIMITED")
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 2
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["ratelimit-limit"] == "20"

    # Other keys are not affected.
    assert api.get("/api/v1/prompts").status_code == 200
    time.sleep(retry_after)
    assert client.get("/api/v1/prompts").status_code == 200


def test_unlimited_key_has_no_headers(api: httpx.Client) -> None:
    created = create_key(api, scopes=["read"], rateLimitPerSecond=0)
    response = httpx.get(
        f"{api.base_url}/api/v1/prompts", headers={"Authorization": f"Bearer {created['key']}"}
    )
    assert response.status_code == 200
    assert "ratelimit-limit" not in response.headers


def test_requests_without_a_key_are_limited_per_ip(anon: httpx.Client) -> None:
    response = anon.get("/api/v1/docs/openapi.json")
    assert response.status_code == 200
    assert "ratelimit-limit" in response.headers


def test_health_ready_metrics_are_exempt(anon: httpx.Client) -> None:
    for path in ("/health", "/ready", "/metrics"):
        response = anon.get(path)
        assert response.status_code == 200
        assert "ratelimit-limit" not in response.headers
