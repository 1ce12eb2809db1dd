"""One error hierarchy for the whole system.

Domain code raises these; the gRPC interceptor turns them into status codes plus a structured
`ErrorInfo` trailer, and the gateway turns that back into the REST error shape. Nothing else maps errors.
"""

from __future__ import annotations

from typing import Any, ClassVar

import grpc


class PvcError(Exception):
    """Base of every expected failure. `code` is the REST error code; `http_status` its status."""

    default_code: ClassVar[str] = "INTERNAL"
    http_status: ClassVar[int] = 500
    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details: dict[str, Any] = details or {}


class ValidationFailed(PvcError):
    default_code = "VALIDATION_ERROR"
    http_status = 400
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(PvcError):
    default_code = "UNAUTHORIZED"
    http_status = 401
    grpc_status = grpc.StatusCode.UNAUTHENTICATED


class Forbidden(PvcError):
    default_code = "FORBIDDEN"
    http_status = 403
    grpc_status = grpc.StatusCode.PERMISSION_DENIED


class NotFound(PvcError):
    default_code = "NOT_FOUND"
    http_status = 404
    grpc_status = grpc.StatusCode.NOT_FOUND


class Conflict(PvcError):
    """409. Specific codes: PROTECTED_TAG, ARCHIVED, NO_STAGING, PROMOTION_BLOCKED, NO_PREVIOUS..."""

    default_code = "CONFLICT"
    http_status = 409
    grpc_status = grpc.StatusCode.ABORTED


class PreconditionFailed(PvcError):
    default_code = "PRECONDITION_FAILED"
    http_status = 412
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class PayloadTooLarge(PvcError):
    default_code = "PAYLOAD_TOO_LARGE"
    http_status = 413
    grpc_status = grpc.StatusCode.OUT_OF_RANGE


class RateLimited(PvcError):
    default_code = "RATE_LIMITED"
    http_status = 429
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(PvcError):
    default_code = "UNAVAILABLE"
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE


class Internal(PvcError):
    pass


_BY_GRPC_STATUS: dict[grpc.StatusCode, type[PvcError]] = {
    cls.grpc_status: cls
    for cls in (
        ValidationFailed,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        PreconditionFailed,
        PayloadTooLarge,
        RateLimited,
        Unavailable,
    )
}
# Transport-level failures that mean "the dependency could not answer".
_BY_GRPC_STATUS[grpc.StatusCode.DEADLINE_EXCEEDED] = Unavailable
_BY_GRPC_STATUS[grpc.StatusCode.CANCELLED] = Unavailable
_BY_GRPC_STATUS[grpc.StatusCode.ALREADY_EXISTS] = Conflict


def error_class_for(status: grpc.StatusCode) -> type[PvcError]:
    return _BY_GRPC_STATUS.get(status, Internal)
