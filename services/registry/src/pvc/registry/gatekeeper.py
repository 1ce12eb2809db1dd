"""The registry's view of the evals gate: `CheckGate` over gRPC, with a deadline, never a silent pass."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import orjson

from pvc.core.context import Caller
from pvc.core.errors import Unavailable
from pvc.core.grpc_client import call_metadata, open_channel
from pvc.v1 import evals_pb2, evals_pb2_grpc


@dataclass(frozen=True)
class GateCheck:
    can_promote: bool
    document: dict[str, Any]


class Gate(Protocol):
    async def check(self, *, caller: Caller, version_id: uuid.UUID, prompt_id: uuid.UUID) -> GateCheck: ...


class EvalsGate:
    def __init__(self, *, address: str, internal_token: str, deadline: float) -> None:
        self.channel = open_channel(address)
        self.stub = evals_pb2_grpc.EvalsServiceStub(self.channel)
        self.internal_token = internal_token
        self.deadline = deadline

    async def check(self, *, caller: Caller, version_id: uuid.UUID, prompt_id: uuid.UUID) -> GateCheck:
        try:
            reply = await self.stub.CheckGate(
                evals_pb2.CheckGateRequest(version_id=str(version_id), prompt_id=str(prompt_id)),
                metadata=call_metadata(caller=caller, internal_token=self.internal_token),
                timeout=self.deadline,
                # Wait (within the deadline) for a restarting evals instead of failing at once.
                wait_for_ready=True,
            )
            document = orjson.loads(reply.gate_json)
        except (grpc.aio.AioRpcError, orjson.JSONDecodeError) as exc:
            # Whatever went wrong, the gate was not checked: the promotion must not happen.
            reason = exc.code().name.lower() if isinstance(exc, grpc.aio.AioRpcError) else "bad answer"
            raise Unavailable(
                "the evals service could not check the gate; nothing was changed",
                details={"dependency": "evals", "reason": reason},
            ) from None
        if not isinstance(document, dict):
            raise Unavailable("the evals service gave no gate answer", details={"dependency": "evals"})
        return GateCheck(
            can_promote=bool(reply.can_promote and document.get("canPromote")), document=document
        )
