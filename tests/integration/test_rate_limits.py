"""Rate limits: a token bucket per key (a key's own rateLimitPerSecond) and per client IP for requests
without a valid key, 429 with Retry-After and RateLimit-* headers, recovery after Retry-After,
infrastructure routes exempt."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from pvc.devstack import Stack

from .support import assert_error, create_key, gateway_replica

# The dedicated gateway's default bucket: 3 requests, then one every 2 s.
IP_BURST = 3
IP_RATE = 0.5


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


@pytest.fixture(scope="module")
def small_limit_gateway(stack: Stack) -> Iterator[str]:
    """A gateway whose default bucket (per key without its own limit, and per client IP) is tiny."""
    env = {"PVC_RATE_LIMIT_PER_SECOND": str(IP_RATE), "PVC_RATE_LIMIT_BURST": str(IP_BURST)}
    with gateway_replica(stack, name="gateway-small-limit", env=env) as url:
        yield url


def test_requests_without_a_valid_key_are_driven_to_429_per_ip(
    api: httpx.Client, small_limit_gateway: str
) -> None:
    # The peer is 127.0.0.1, a trusted proxy, so the X-Forwarded-For entry it appends is the client IP
    # (as Envoy's is in production). Public routes, missing keys and bad keys share that IP's bucket.
    client_a = httpx.Client(
        base_url=small_limit_gateway, headers={"X-Forwarded-For": "203.0.113.10"}, timeout=30
    )
    first = client_a.get("/api/v1/docs/openapi.json")
    assert first.status_code == 200
    assert first.headers["ratelimit-limit"] == str(IP_BURST)
    assert first.headers["ratelimit-remaining"] == str(IP_BURST - 1)
    assert client_a.get("/api/v1/prompts").status_code == 401  # no key
    assert (
        client_a.get("/api/v1/prompts", headers={"Authorization": "Bearer pvc_not_a_key"}).status_code == 401
    )

    limited = client_a.get("/api/v1/docs/openapi.json")
    assert_error(limited, 429, "RATE_LIMITED")
    retry_after = int(limited.headers["retry-after"])
    assert retry_after == 2  # one token back at 0.5/s
    assert limited.json()["error"]["details"] == {"retryAfter": retry_after, "limit": IP_BURST}
    assert limited.headers["ratelimit-limit"] == str(IP_BURST)
    assert limited.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(limited.headers["ratelimit-reset"]) <= IP_BURST / IP_RATE
    # Every route behind the limiter answers the same while the bucket is empty, bad keys included.
    assert_error(client_a.get("/api/v1/prompts"), 429, "RATE_LIMITED")

    # Another client IP has its own bucket; a valid key is limited by its key's bucket, not the IP's.
    client_b = httpx.Client(
        base_url=small_limit_gateway, headers={"X-Forwarded-For": "203.0.113.20"}, timeout=30
    )
    assert client_b.get("/api/v1/docs/openapi.json").status_code == 200
    unlimited = create_key(api, scopes=["read"], rateLimitPerSecond=0)
    keyed = client_a.get("/api/v1/prompts", headers={"Authorization": f"Bearer {unlimited['key']}"})
    assert keyed.status_code == 200
    # Infrastructure routes stay exempt for the limited IP.
    assert client_a.get("/health").status_code == 200

    time.sleep(retry_after)
    assert client_a.get("/api/v1/docs/openapi.json").status_code == 200
    client_a.close()
    client_b.close()
