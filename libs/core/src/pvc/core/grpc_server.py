"""The one way a pvc service serves gRPC: health, reflection, identity, error mapping, metrics, SIGTERM."""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry import propagate, trace
from sqlalchemy import exc as sa_exc

from pvc.core.context import (
    META_ACTOR_ID,
    META_ACTOR_NAME,
    META_INTERNAL_TOKEN,
    META_PROJECT,
    META_REQUEST_ID,
    Caller,
    caller_var,
    request_id_var,
)
from pvc.core.errors import PvcError, Unavailable
from pvc.core.metrics import GRPC_LATENCY, GRPC_REQUESTS
from pvc.v1 import common_pb2

log = logging.getLogger("pvc.grpc")
tracer = trace.get_tracer("pvc.grpc")

ERROR_TRAILER = "pvc-error-bin"
# Callable that registers a servicer on a server, as generated: `add_XServicer_to_server`.
Registrar = Callable[[Any, grpc.aio.Server], None]
_UNGUARDED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
# A connection refused, dropped (server restart: the pool then discards its other connections too)
# or not available from the pool in time.
DATABASE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def error_trailer(error: PvcError) -> tuple[str, bytes]:
    info = common_pb2.ErrorInfo(
        code=error.code, message=error.message, details_json=orjson.dumps(error.details).decode()
    )
    return (ERROR_TRAILER, info.SerializeToString())


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks the internal token, restores the caller identity, maps errors, records metrics."""

    def __init__(self, *, service: str, internal_token: str) -> None:
        self.service = service
        self.internal_token = internal_token.encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(_UNGUARDED_PREFIXES):
            return handler
        metadata = {key: value for key, value in handler_call_details.invocation_metadata or ()}
        inner = handler.unary_unary
        method_name = method.rsplit("/", 1)[-1]

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                token = str(metadata.get(META_INTERNAL_TOKEN, "")).encode()
                if not hmac.compare_digest(token, self.internal_token):
                    code = "UNAUTHENTICATED"
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or bad internal token")
                caller = _caller_from(metadata)
                if caller is None:
                    code = "UNAUTHENTICATED"
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "call carries no caller identity")
                caller_var.set(caller)
                request_id_var.set(str(metadata.get(META_REQUEST_ID) or uuid.uuid4()))
                parent = propagate.extract(metadata)
                with tracer.start_as_current_span(f"{self.service}/{method_name}", context=parent):
                    try:
                        return await inner(request, context)
                    except PvcError as error:
                        code = error.grpc_status.name
                        context.set_trailing_metadata((error_trailer(error),))
                        await context.abort(error.grpc_status, error.message)
                    except asyncio.CancelledError:
                        code = "CANCELLED"
                        raise
                    except grpc.aio.AbortError:
                        raise
                    except DATABASE_UNAVAILABLE as error:
                        # Down, restarting, or out of pooled connections: retryable, never a 500.
                        code = "UNAVAILABLE"
                        log.warning("database unavailable in %s: %s", method, error)
                        unavailable = Unavailable(
                            "the database is unavailable", details={"dependency": "database"}
                        )
                        context.set_trailing_metadata((error_trailer(unavailable),))
                        await context.abort(grpc.StatusCode.UNAVAILABLE, unavailable.message)
                    except Exception:
                        code = "INTERNAL"
                        log.exception("unhandled error in %s", method)
                        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                GRPC_REQUESTS.labels(self.service, method_name, code).inc()
                GRPC_LATENCY.labels(self.service, method_name).observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _caller_from(metadata: dict[str, Any]) -> Caller | None:
    try:
        project_id = uuid.UUID(str(metadata[META_PROJECT]))
    except (KeyError, ValueError):
        return None
    return Caller(
        project_id=project_id,
        actor_id=str(metadata.get(META_ACTOR_ID, "")),
        actor_name=str(metadata.get(META_ACTOR_NAME, "")),
    )


async def create_server(
    *,
    service: str,
    address: str,
    internal_token: str,
    servicers: Sequence[tuple[Registrar, object]],
    service_names: Sequence[str],
) -> tuple[grpc.aio.Server, int, HealthServicer]:
    """Build (not start) a server bound to `address` ("host:0" picks a free port)."""
    server = grpc.aio.server(
        interceptors=[CallInterceptor(service=service, internal_token=internal_token)],
        options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)],
    )
    for register, servicer in servicers:
        register(servicer, server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind gRPC server to {address}")
    return server, port, health


async def serve_until_signalled(
    *, server: grpc.aio.Server, health: HealthServicer, service_names: Sequence[str], grace: float
) -> None:
    """Start, report SERVING, and on SIGTERM/SIGINT report NOT_SERVING, drain in-flight calls, stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    for name in ("", *service_names):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    await stop.wait()
    log.info("shutting down: draining in-flight calls")
    await health.enter_graceful_shutdown()
    await server.stop(grace)
