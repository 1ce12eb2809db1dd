"""gRPC stubs of the backing services, one shared channel each, called with the caller's identity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import grpc
from fastapi import Depends, Request
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pvc.core.context import Caller
from pvc.core.grpc_client import call_metadata, error_from_rpc, open_channel
from pvc.gateway.identity import Principal
from pvc.gateway.settings import GatewaySettings
from pvc.v1 import deployments_pb2_grpc, evals_pb2_grpc, registry_pb2_grpc, webhooks_pb2_grpc

Response = TypeVar("Response")


class Backends:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.channels = {name: open_channel(addr) for name, addr in settings.services.items()}
        self.registry = registry_pb2_grpc.RegistryServiceStub(self.channels["registry"])
        self.evals = evals_pb2_grpc.EvalsServiceStub(self.channels["evals"])
        self.webhooks = webhooks_pb2_grpc.WebhookServiceStub(self.channels["webhooks"])
        self.deployments = deployments_pb2_grpc.DeploymentsServiceStub(self.channels["deployments"])

    async def call(
        self,
        method: Callable[..., Awaitable[Response]],
        request: Any,
        *,
        principal: Principal,
        deadline: float | None = None,
    ) -> Response:
        caller = Caller(
            project_id=principal.project_id, actor_id=str(principal.key_id), actor_name=principal.name
        )
        try:
            return await method(
                request,
                metadata=call_metadata(caller=caller, internal_token=self.settings.internal_token),
                timeout=deadline or self.settings.grpc_deadline_seconds,
            )
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error) from None

    async def health(self, name: str, *, deadline: float = 1.0) -> bool:
        stub = health_pb2_grpc.HealthStub(self.channels[name])
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=deadline)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()


async def backends(request: Request) -> Backends:
    """The app's stubs, as a FastAPI dependency (`async`: a plain `def` one runs in a worker thread)."""
    found: Backends = request.app.state.backends
    return found


Services = Annotated[Backends, Depends(backends)]
