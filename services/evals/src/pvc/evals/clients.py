"""What evals calls out to: the registry (gRPC) for versions, harnesses (HTTP) for triggers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import grpc
import httpx
import orjson

from pvc.core.context import Caller
from pvc.core.errors import ValidationFailed
from pvc.core.grpc_client import call_metadata, error_from_rpc, open_channel
from pvc.core.ssrf import OutboundPolicy, PinnedClient
from pvc.evals import signing
from pvc.evals.service import VersionInfo
from pvc.v1 import registry_pb2, registry_pb2_grpc


class RegistryVersions:
    """`VersionLookup` over the registry's LookupVersions, scoped to the caller's project."""

    def __init__(self, *, address: str, internal_token: str, deadline: float) -> None:
        self.channel = open_channel(address)
        self.stub = registry_pb2_grpc.RegistryServiceStub(self.channel)
        self.internal_token = internal_token
        self.deadline = deadline

    async def versions(self, *, caller: Caller, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, VersionInfo]:
        try:
            reply = await self.stub.LookupVersions(
                registry_pb2.LookupVersionsRequest(version_ids=[str(i) for i in ids]),
                metadata=call_metadata(caller=caller, internal_token=self.internal_token),
                timeout=self.deadline,
            )
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error) from None
        return {
            uuid.UUID(v.id): VersionInfo(
                id=uuid.UUID(v.id),
                prompt_id=uuid.UUID(v.prompt_id),
                number=v.number,
                template=v.template,
                variables=orjson.loads(v.variables_json or "[]"),
                config=orjson.loads(v.config_json or "{}"),
            )
            for v in reply.versions
        }


class HarnessSender:
    """POSTs a trigger, signed the Standard Webhooks way; redirects are refused, not followed.

    The URL is checked against the SSRF policy again at send time and the connection goes to the address
    that was checked, so a harness name re-pointed at an internal address after registration is refused.
    """

    def __init__(self, *, policy: OutboundPolicy, request_timeout: float) -> None:
        self.policy = policy
        self.request_timeout = request_timeout
        self.client = PinnedClient(timeout=request_timeout)

    async def __call__(self, url: str, secret: str, body: bytes, wait_seconds: float) -> str | None:
        try:
            target = await self.policy.check(url)
        except ValidationFailed as exc:
            return f"refused: {exc.message}"
        headers = {
            "content-type": "application/json",
            "user-agent": "pvc-evals",
            **signing.headers(secret=secret, msg_id=f"msg_{uuid.uuid4().hex}", body=body),
        }
        try:
            response = await self.client.post(
                target, headers=headers, body=body, seconds=min(wait_seconds, self.request_timeout)
            )
        except httpx.HTTPError as exc:
            return f"harness unreachable: {type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"harness answered HTTP {response.status_code}"
