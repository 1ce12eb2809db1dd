"""Who is calling, for which project, under which request id: carried in contextvars.

The gateway establishes the identity; it travels to services as gRPC metadata (see `grpc_metadata`),
and each service's interceptor restores it here, so domain code and logs can read it.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass

from pvc.core.errors import Unauthenticated

META_PROJECT = "x-pvc-project-id"
META_ACTOR_ID = "x-pvc-actor-id"
META_ACTOR_NAME = "x-pvc-actor-name"
META_REQUEST_ID = "x-request-id"
META_INTERNAL_TOKEN = "x-pvc-internal-token"


@dataclass(frozen=True, slots=True)
class Caller:
    project_id: uuid.UUID
    actor_id: str
    actor_name: str


request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
caller_var: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> Caller:
    caller = caller_var.get()
    if caller is None:
        raise Unauthenticated("call carries no caller identity")
    return caller


def grpc_metadata(*, caller: Caller, request_id: str | None, internal_token: str) -> list[tuple[str, str]]:
    metadata = [
        (META_PROJECT, str(caller.project_id)),
        (META_ACTOR_ID, caller.actor_id),
        # Metadata values must be ASCII; names are user-chosen, so escape anything else.
        (META_ACTOR_NAME, caller.actor_name.encode("ascii", "backslashreplace").decode()),
        (META_INTERNAL_TOKEN, internal_token),
    ]
    if request_id:
        metadata.append((META_REQUEST_ID, request_id))
    return metadata
