from __future__ import annotations

from pvc.core.settings import ServiceSettings


class DeploymentsSettings(ServiceSettings):
    # The registry, asked whether versions exist and which prompt they belong to.
    registry_addr: str = "127.0.0.1:50051"
