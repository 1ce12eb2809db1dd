"""Settings refuse the development encryption key in production and malformed allowed networks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pvc.webhooks.consumer import durable_name
from pvc.webhooks.settings import WebhookSettings


def test_prod_refuses_the_dev_encryption_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PVC_WEBHOOK_ENCRYPTION_KEY", raising=False)
    monkeypatch.setenv("PVC_ENV", "prod")
    monkeypatch.setenv("PVC_INTERNAL_TOKEN", "a-real-token")
    with pytest.raises(ValidationError, match="PVC_WEBHOOK_ENCRYPTION_KEY"):
        WebhookSettings()
    monkeypatch.setenv("PVC_WEBHOOK_ENCRYPTION_KEY", "a-real-key")
    settings = WebhookSettings()
    assert settings.webhook_allow_private is False


def test_consumer_name_follows_the_database() -> None:
    assert (
        durable_name(configured="", database_url="postgresql://u@h:5432/pvc_test_ab12")
        == "webhooks-pvc_test_ab12"
    )
    assert (
        durable_name(configured="", database_url="postgresql://u@h/my.db?sslmode=require") == "webhooks-my_db"
    )
    assert durable_name(configured="hooks", database_url="postgresql://u@h/x") == "hooks"


def test_allowed_networks_are_parsed_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PVC_ENV", "dev")
    monkeypatch.setenv("PVC_WEBHOOK_ALLOWED_NETWORKS", "10.8.0.0/16,fd00::/8")
    policy = WebhookSettings().outbound_policy()
    assert policy.allow_private is False
    assert [str(n) for n in policy.allowed_networks] == ["10.8.0.0/16", "fd00::/8"]
    monkeypatch.setenv("PVC_WEBHOOK_ALLOWED_NETWORKS", "10.8.0.0/33")
    with pytest.raises(ValidationError, match="webhook_allowed_networks"):
        WebhookSettings()
