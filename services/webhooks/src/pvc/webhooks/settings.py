from __future__ import annotations

from pydantic import model_validator

from pvc.core.settings import CidrList, ServiceSettings
from pvc.core.ssrf import OutboundPolicy, parse_networks

DEV_ENCRYPTION_KEY = "dev-webhook-key-not-secret"


class WebhookSettings(ServiceSettings):
    # Server key that encrypts subscription secrets at rest (any high-entropy string; SHA-256 derives
    # the AES-256 key). Changing it makes every stored secret unreadable.
    webhook_encryption_key: str = DEV_ENCRYPTION_KEY
    # Let subscriptions target loopback/private/reserved addresses (dev stack and tests only).
    webhook_allow_private: bool = False
    # Networks subscriptions may target even though they are not public (e.g. an in-cluster receiver).
    webhook_allowed_networks: CidrList = ""
    # Durable JetStream consumer name; empty = derived from the database name, so stacks sharing one
    # NATS server never take each other's events.
    webhook_consumer: str = ""
    # Seconds after which NATS deletes the durable consumer once nobody pulls from it; 0 = never (production:
    # a long outage must resume where it stopped). Throwaway test stacks set it so they leave nothing behind.
    webhook_consumer_inactive_seconds: float = 0
    # Deliveries sent at once by one process.
    webhook_concurrency: int = 16

    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy(
            allow_private=self.webhook_allow_private,
            allowed_networks=parse_networks(self.webhook_allowed_networks),
        )

    @model_validator(mode="after")
    def _check(self) -> WebhookSettings:
        if self.env == "prod" and self.webhook_encryption_key == DEV_ENCRYPTION_KEY:
            raise ValueError("PVC_WEBHOOK_ENCRYPTION_KEY must be set to a real secret when PVC_ENV=prod")
        return self
