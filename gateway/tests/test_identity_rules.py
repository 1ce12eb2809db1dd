"""Unit tests of the identity pieces that need no stack: audit rules, redaction, buckets, client IP."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pvc.core.ssrf import parse_networks
from pvc.gateway.audit import REDACTED, derive_rule, redact, resource_id
from pvc.gateway.guard import client_ip
from pvc.gateway.identity import Principal
from pvc.gateway.ratelimit import RateLimiter


@pytest.mark.parametrize(
    ("method", "path", "has_get", "scope", "action", "fetch_before"),
    [
        ("POST", "/api/v1/prompts", True, "prompts:write", "prompt.create", False),
        ("PUT", "/api/v1/prompts/{prompt}", True, "prompts:write", "prompt.update", True),
        ("POST", "/api/v1/prompts/{prompt}/versions", True, "prompts:write", "version.create", False),
        ("POST", "/api/v1/prompts/{prompt}/tags/{name}", True, "prompts:write", "tag.set", True),
        ("DELETE", "/api/v1/prompts/{prompt}/tags/{name}", True, "prompts:write", "tag.delete", True),
        ("POST", "/api/v1/prompts/{prompt}/promote", False, "promote", "prompt.promote", False),
        (
            "POST",
            "/api/v1/prompts/{prompt}/promote/override",
            False,
            "promote:override",
            "prompt.promote.override",
            False,
        ),
        ("POST", "/api/v1/prompts/{prompt}/rollback", False, "promote", "prompt.rollback", False),
        ("PUT", "/api/v1/prompts/{prompt}/gate", True, "evals:write", "gate.update", True),
        ("POST", "/api/v1/evaluations/trigger", False, "evals:write", "evaluation.trigger", False),
        ("POST", "/api/v1/evaluations/{id}/callback", False, None, "evaluation.callback", False),
        ("POST", "/api/v1/metrics/ingest", False, "metrics:write", "metric.ingest", False),
        ("DELETE", "/api/v1/deployments/{id}", True, "deployments:write", "deployment.delete", True),
        (
            "POST",
            "/api/v1/webhooks/{id}/rotate-secret",
            False,
            "webhooks:admin",
            "webhook.rotate_secret",
            False,
        ),
        (
            "POST",
            "/api/v1/webhooks/{id}/deliveries/{did}/redeliver",
            False,
            "webhooks:admin",
            "delivery.redeliver",
            False,
        ),
        ("POST", "/api/v1/api-keys", True, "keys:admin", "api_key.create", False),
    ],
)
def test_actions_derive_from_method_and_template(
    method: str, path: str, has_get: bool, scope: str | None, action: str, fetch_before: bool
) -> None:
    rule = derive_rule(method=method, path=path, has_get=has_get, scope=scope, extra={})
    assert rule.action == action
    assert rule.audited
    assert rule.fetch_before == fetch_before


def test_overrides_and_read_only_posts() -> None:
    rule = derive_rule(
        method="DELETE",
        path="/api/v1/api-keys/{id}",
        has_get=True,
        scope="keys:admin",
        extra={"x-audit-action": "api_key.revoke"},
    )
    assert rule.action == "api_key.revoke"
    render = derive_rule(
        method="POST", path="/api/v1/prompts/{prompt}/render", has_get=False, scope="read", extra={}
    )
    assert not render.audited
    skipped = derive_rule(
        method="POST", path="/api/v1/x", has_get=False, scope="admin", extra={"x-audit": False}
    )
    assert not skipped.audited


def test_resource_ids() -> None:
    tag = derive_rule(
        method="POST",
        path="/api/v1/prompts/{prompt}/tags/{name}",
        has_get=True,
        scope="prompts:write",
        extra={},
    )
    assert (
        resource_id(tag, {"prompt": "greeting", "name": "staging"}, {"name": "staging"}) == "greeting/staging"
    )
    version = derive_rule(
        method="POST", path="/api/v1/prompts/{prompt}/versions", has_get=True, scope="prompts:write", extra={}
    )
    assert resource_id(version, {"prompt": "greeting"}, {"id": "v-id"}) == "v-id"
    prompt = derive_rule(
        method="PUT", path="/api/v1/prompts/{prompt}", has_get=True, scope="prompts:write", extra={}
    )
    assert resource_id(prompt, {"prompt": "greeting"}, {"id": "p-id"}) == "p-id"
    assert resource_id(prompt, {"prompt": "greeting"}, None) == "greeting"


def test_redaction() -> None:
    value = {
        "key": "pvc_abc",
        "secret": "whsec_x",
        "signingSecret": "s",
        "config": {"max_tokens": 5, "apiToken": "t", "nested": [{"password": "p"}]},
        "note": "pvc_" + "a" * 46,
        "name": "ok",
        "expiresAt": None,
    }
    assert redact(value) == {
        "key": REDACTED,
        "secret": REDACTED,
        "signingSecret": REDACTED,
        "config": {"max_tokens": 5, "apiToken": REDACTED, "nested": [{"password": REDACTED}]},
        "note": REDACTED,
        "name": "ok",
        "expiresAt": None,
    }


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=5), c),
    )
)
def test_redaction_keeps_shape(value: Any) -> None:
    assert type(redact(value)) is type(value) or redact(value) == REDACTED


def test_token_bucket() -> None:
    limiter = RateLimiter(per_second=100, burst=1000)
    assert limiter.limits_for(None) == (100, 1000)
    assert limiter.limits_for(0) == (0, 0)
    assert limiter.limits_for(2) == (2, 20)
    assert limiter.take("unlimited", rate=0, burst=0) is None
    decisions = [limiter.take("k", rate=1, burst=3) for _ in range(4)]
    assert [d.allowed for d in decisions if d] == [True, True, True, False]
    last = decisions[-1]
    assert last is not None
    assert last.remaining == 0
    assert last.retry_after == 1
    assert last.limit == 3
    assert limiter.take("other", rate=1, burst=3).allowed  # type: ignore[union-attr]


def test_token_bucket_refills() -> None:
    limiter = RateLimiter(per_second=100, burst=1000)
    assert limiter.take("k", rate=50, burst=1).allowed  # type: ignore[union-attr]
    assert not limiter.take("k", rate=50, burst=1).allowed  # type: ignore[union-attr]
    time.sleep(0.05)
    assert limiter.take("k", rate=50, burst=1).allowed  # type: ignore[union-attr]


def _scope(peer: str, xff: str | None = None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", xff.encode())] if xff else []
    return {"client": (peer, 1234), "headers": headers}


def test_client_ip_believes_only_trusted_proxies() -> None:
    trusted = parse_networks("127.0.0.1/32, ::1/128, 10.0.0.0/8")
    assert client_ip(_scope("127.0.0.1", "1.2.3.4, 5.6.7.8"), trusted) == "5.6.7.8"
    assert client_ip(_scope("10.1.2.3", "5.6.7.8"), trusted) == "5.6.7.8"
    assert client_ip(_scope("192.0.2.9", "5.6.7.8"), trusted) == "192.0.2.9"
    assert client_ip(_scope("127.0.0.1", "garbage"), trusted) == "127.0.0.1"
    assert client_ip(_scope("127.0.0.1"), trusted) == "127.0.0.1"
    assert client_ip({"client": None, "headers": []}, trusted) is None


def test_minting_needs_the_scopes() -> None:
    def principal(*scopes: str) -> Principal:
        return Principal(
            key_id=uuid.uuid4(),
            project_id=uuid.uuid4(),
            name="k",
            scopes=frozenset(scopes),
            rate_limit_per_second=None,
        )

    assert principal("admin").can_grant(["admin", "read"])
    assert principal("keys:admin", "read").can_grant(["read"])
    assert not principal("keys:admin").can_grant(["admin"])
    assert not principal("keys:admin").can_grant(["read"])
