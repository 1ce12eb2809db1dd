from __future__ import annotations

from pydantic import Field

from pvc.core.settings import ServiceSettings


class DeploymentsSettings(ServiceSettings):
    # The registry, asked whether versions exist and which prompt they belong to.
    registry_addr: str = "127.0.0.1:50051"
    # Seconds between two guardrail checks of one deployment (each aggregates all its points).
    guardrail_interval_seconds: float = Field(default=1.0, ge=0, le=60)
