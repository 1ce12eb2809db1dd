"""Every error leaves the gateway in one shape: {"error": {code, message, details}, "requestId"}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pvc.core.context import request_id_var
from pvc.core.errors import PvcError
from pvc.gateway.responses import JSON

log = logging.getLogger("pvc.gateway")

_HTTP_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "UNAVAILABLE",
}


def error_body(*, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details or {}},
        "requestId": request_id_var.get(),
    }


def error_response(
    status: int,
    *,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSON:
    return JSON(error_body(code=code, message=message, details=details), status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "body")


async def _pvc_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, PvcError)
    if exc.http_status >= 500 and exc.http_status != 503:
        log.error("internal error: %s", exc.message)
    headers = {"Retry-After": str(exc.details["retryAfter"])} if "retryAfter" in exc.details else None
    return error_response(
        exc.http_status, code=exc.code, message=exc.message, details=exc.details, headers=headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, RequestValidationError)
    fields: dict[str, str] = {}
    content_type = request.headers.get("content-type", "")
    if content_type and "json" not in content_type:
        return error_response(
            400,
            code="VALIDATION_ERROR",
            message="request body must be JSON (Content-Type: application/json)",
            details={"fields": {"body": "not JSON"}},
        )
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            fields["body"] = "is not valid JSON"
            continue
        fields.setdefault(_field_name(tuple(item.get("loc", ()))), str(item.get("msg", "invalid")))
    return error_response(
        400, code="VALIDATION_ERROR", message="request is not valid", details={"fields": fields}
    )


async def _http_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "INTERNAL" if exc.status_code >= 500 else "VALIDATION_ERROR")
    message = "route not found" if exc.status_code == 404 else str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code=code, message=message, headers=headers)


async def _unhandled(request: Request, exc: Exception) -> JSON:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, code="INTERNAL", message="internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PvcError, _pvc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
