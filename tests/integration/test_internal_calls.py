"""Services refuse internal gRPC calls that lack the internal token or the caller identity, so a pod
inside the cluster cannot bypass the gateway's scopes by calling a service directly."""

from __future__ import annotations

import uuid

import grpc
import pytest

from pvc.devstack import Stack
from pvc.v1 import registry_pb2, registry_pb2_grpc


def _call(stack: Stack, metadata: list[tuple[str, str]]) -> grpc.StatusCode:
    with grpc.insecure_channel(stack.service_addr("registry")) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        try:
            stub.ListPrompts(registry_pb2.ListPromptsRequest(), metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("token", "project"),
    [(None, True), ("wrong-token", True), ("TOKEN", False), ("TOKEN", "not-a-uuid")],
)
def test_registry_refuses_calls_without_token_or_identity(
    stack: Stack, token: str | None, project: bool | str
) -> None:
    metadata = []
    if token is not None:
        metadata.append(("x-pvc-internal-token", stack.internal_token if token == "TOKEN" else token))
    if project is True:
        metadata.append(("x-pvc-project-id", str(uuid.uuid4())))
    elif isinstance(project, str):
        metadata.append(("x-pvc-project-id", project))
    assert _call(stack, metadata) == grpc.StatusCode.UNAUTHENTICATED


def test_registry_serves_calls_with_token_and_identity(stack: Stack) -> None:
    metadata = [("x-pvc-internal-token", stack.internal_token), ("x-pvc-project-id", str(uuid.uuid4()))]
    assert _call(stack, metadata) == grpc.StatusCode.OK
