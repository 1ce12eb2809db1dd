"""Typed settings shared by every process. Each process subclasses `CommonSettings`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pvc.core.ssrf import parse_networks

DEV_INTERNAL_TOKEN = "dev-internal-token"


def _cidrs(value: str) -> str:
    parse_networks(value)  # a malformed CIDR stops the process at start, not at the first request
    return value


# Comma-separated CIDRs, e.g. "10.20.0.0/16, fd00:1::/64"; empty = none.
CidrList = Annotated[str, AfterValidator(_cidrs)]


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PVC_", extra="ignore", populate_by_name=True)

    env: Literal["dev", "test", "prod"] = "prod"
    log_level: str = "info"
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/pvc", validation_alias="DATABASE_URL"
    )
    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias="NATS_URL")
    # Shared secret every internal gRPC call carries; services refuse calls without it.
    internal_token: str = DEV_INTERNAL_TOKEN
    db_pool_size: int = 10
    # Deadline applied to every outgoing gRPC call, so a dependency that is down fails fast.
    grpc_deadline_seconds: float = 5.0

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_prod(self) -> CommonSettings:
        if self.env == "prod" and self.internal_token == DEV_INTERNAL_TOKEN:
            raise ValueError("PVC_INTERNAL_TOKEN must be set to a real secret when PVC_ENV=prod")
        return self


class ServiceSettings(CommonSettings):
    """Settings of a gRPC service process."""

    grpc_addr: str = "127.0.0.1:50051"
    metrics_port: int = 0
    # Seconds given to in-flight calls on SIGTERM before the server stops.
    shutdown_grace_seconds: float = 10.0
