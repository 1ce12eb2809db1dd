"""What the deployments service asks the registry: do these versions exist, and whose are they."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import grpc

from pvc.core.context import Caller
from pvc.core.grpc_client import call_metadata, error_from_rpc, open_channel
from pvc.v1 import registry_pb2, registry_pb2_grpc

CACHE_LIMIT = 100_000
# The registry answers at most this many ids per LookupVersions call.
LOOKUP_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class VersionInfo:
    id: uuid.UUID
    prompt_id: uuid.UUID
    number: int


class VersionDirectory(Protocol):
    async def lookup(
        self, *, caller: Caller, version_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, VersionInfo]:
        """The versions among `version_ids` that exist in the caller's project."""
        ...


class RegistryVersions:
    """LookupVersions over gRPC, cached: versions are immutable, so a found version never changes.

    Only hits are cached (per project), so a version created a moment later is found on the next call.
    """

    def __init__(self, *, target: str, internal_token: str, deadline: float) -> None:
        self.channel = open_channel(target)
        self.stub = registry_pb2_grpc.RegistryServiceStub(self.channel)
        self.internal_token = internal_token
        self.deadline = deadline
        self._cache: dict[tuple[uuid.UUID, uuid.UUID], VersionInfo] = {}

    async def lookup(
        self, *, caller: Caller, version_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, VersionInfo]:
        found: dict[uuid.UUID, VersionInfo] = {}
        missing: list[uuid.UUID] = []
        for version_id in set(version_ids):
            cached = self._cache.get((caller.project_id, version_id))
            if cached is None:
                missing.append(version_id)
            else:
                found[version_id] = cached
        if not missing:
            return found
        versions = []
        for start in range(0, len(missing), LOOKUP_CHUNK):
            chunk = missing[start : start + LOOKUP_CHUNK]
            try:
                reply = await self.stub.LookupVersions(
                    registry_pb2.LookupVersionsRequest(version_ids=[str(v) for v in chunk]),
                    metadata=call_metadata(caller=caller, internal_token=self.internal_token),
                    timeout=self.deadline,
                )
            except grpc.aio.AioRpcError as error:
                raise error_from_rpc(error) from None
            versions.extend(reply.versions)
        if len(self._cache) > CACHE_LIMIT:
            self._cache.clear()
        for version in versions:
            info = VersionInfo(uuid.UUID(version.id), uuid.UUID(version.prompt_id), version.number)
            self._cache[(caller.project_id, info.id)] = info
            found[info.id] = info
        return found
