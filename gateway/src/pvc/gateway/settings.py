from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from pvc.core.settings import CommonSettings

DEV_PEPPER = "dev-pepper-not-secret"


class GatewaySettings(CommonSettings):
    gateway_addr: str = "127.0.0.1:8000"
    workers: int = 1
    registry_addr: str = "127.0.0.1:50051"
    evals_addr: str = "127.0.0.1:50052"
    webhooks_addr: str = "127.0.0.1:50054"
    deployments_addr: str = "127.0.0.1:50053"
    data_dir: Path = Path(".pvc")
    # The first admin key (project "default", scope admin); see DESIGN.md section 3.
    bootstrap_api_key: str | None = None
    # HMAC key for stored API key hashes. Changing it invalidates every key.
    api_key_pepper: str = DEV_PEPPER
    max_body_bytes: int = 1024 * 1024
    max_ingest_body_bytes: int = 10 * 1024 * 1024
    # Seconds an authenticated key stays cached on this replica while the api_key.* event subscription
    # is down (events are then the only fast invalidation missing, so the TTL must be short).
    key_cache_seconds: float = 1.0
    # ... and while it is live: revocations arrive as events, the TTL is only a safety net.
    key_cache_seconds_with_events: float = 30.0
    # Token bucket per API key (and per client IP without a valid key); 0 = unlimited.
    rate_limit_per_second: float = 100.0
    rate_limit_burst: float = 1000.0
    # Peers whose X-Forwarded-For is believed (the edge Envoy); anyone else's is ignored.
    # Comma-separated CIDRs.
    trusted_proxies: str = "127.0.0.1/32,::1/128"
    # A mutating request's answer waits for its audit row to commit (group commit), at most this long;
    # a row not committed by then stays queued and is retried (docs/identity.md).
    audit_wait_seconds: float = 1.0
    # Prompt resolve answers cached on this replica; events evict them sooner (docs/deployments.md).
    resolve_cache_seconds: float = 5.0
    # How long an expired answer may still be served while the services behind it are unreachable.
    resolve_stale_seconds: float = 300.0
    # Deadline of the gRPC calls that fill the resolve cache: a cold miss fails fast.
    resolve_deadline_seconds: float = 1.0

    @property
    def services(self) -> dict[str, str]:
        """Every backing gRPC service by name; /ready checks each one."""
        return {
            "registry": self.registry_addr,
            "evals": self.evals_addr,
            "webhooks": self.webhooks_addr,
            "deployments": self.deployments_addr,
        }

    @model_validator(mode="after")
    def _check(self) -> GatewaySettings:
        if self.env == "prod" and self.api_key_pepper == DEV_PEPPER:
            raise ValueError("PVC_API_KEY_PEPPER must be set to a real secret when PVC_ENV=prod")
        if self.bootstrap_api_key is not None and not self.bootstrap_api_key.startswith("pvc_"):
            raise ValueError("PVC_BOOTSTRAP_API_KEY must start with 'pvc_'")
        return self
