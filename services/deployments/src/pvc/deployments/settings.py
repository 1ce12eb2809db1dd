from __future__ import annotations

from pydantic import Field

from pvc.core.settings import ServiceSettings
from pvc.deployments.service import GUARDRAIL_INTERVAL


class DeploymentsSettings(ServiceSettings):
    # The registry, asked whether versions exist and which prompt they belong to.
    registry_addr: str = "127.0.0.1:50051"
    # The longest gap between two guardrail checks of one deployment (see docs/deployments.md).
    guardrail_interval_seconds: float = Field(default=GUARDRAIL_INTERVAL, ge=0, le=60)
