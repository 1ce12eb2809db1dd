"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path): request id, limits, metrics."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pvc.core.context import request_id_var

REQUEST_ID = re.compile(r"^[\w-]{1,128}$", re.ASCII)
HTTP_REQUESTS = Counter("pvc_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "pvc_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, *, max_body: int, large_body_paths: dict[str, int]) -> None:
        self.app = app
        self.max_body = max_body
        self.large_body_paths = large_body_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        # Not reset afterwards: the outermost error handler still needs it for its body.
        request_id_var.set(request_id)
        status = 500
        limit = self.large_body_paths.get(scope["path"], self.max_body)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                await _too_large(send_with_id, request_id, limit)
                return
            replay = receive
            if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
                # A chunked body of unknown size: read it up to the limit before the app sees it.
                body = await _read_limited(receive, limit)
                if body is None:
                    await _too_large(send_with_id, request_id, limit)
                    return
                replay = _replayer(body, receive)
            await self.app(scope, replay, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return str(uuid.uuid4())


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Any, request_id: str, limit: int) -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": "PAYLOAD_TOO_LARGE",
                "message": f"request body exceeds {limit} bytes",
                "details": {"limitBytes": limit},
            },
            "requestId": request_id,
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_limited(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replayer(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
