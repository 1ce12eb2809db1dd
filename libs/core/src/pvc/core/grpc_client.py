"""Calling another pvc service: one shared channel per target, identity metadata, deadlines, errors."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
from opentelemetry import propagate

from pvc.core.context import Caller, grpc_metadata, request_id_var
from pvc.core.errors import PvcError, error_class_for
from pvc.core.grpc_server import ERROR_TRAILER
from pvc.v1 import common_pb2


def open_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            # Reconnect quickly after a restarted service comes back.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2_000),
        ],
    )


def call_metadata(*, caller: Caller, internal_token: str) -> list[tuple[str, str]]:
    metadata = grpc_metadata(caller=caller, request_id=request_id_var.get(), internal_token=internal_token)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    metadata.extend(carrier.items())
    return metadata


def error_from_rpc(error: grpc.aio.AioRpcError) -> PvcError:
    """Rebuild the domain error a service raised (or a transport failure) from a failed call."""
    cls = error_class_for(error.code())
    for key, value in error.trailing_metadata() or ():
        if key == ERROR_TRAILER and isinstance(value, bytes):
            info = common_pb2.ErrorInfo.FromString(value)
            details: dict[str, Any] = orjson.loads(info.details_json) if info.details_json else {}
            return cls(info.message, code=info.code or None, details=details)
    if cls.http_status == 503:
        return cls("a dependency is unavailable", details={"reason": error.code().name.lower()})
    return cls(error.details() or "internal error")
