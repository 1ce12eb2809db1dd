"""Helpers shared by route modules: JSON responses, documented error responses, pagination params."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Query
from fastapi.responses import JSONResponse

from pvc.core.errors import NotFound
from pvc.gateway.schemas import ErrorResponse
from pvc.v1 import common_pb2

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Invalid input (VALIDATION_ERROR, details name the fields)",
        401: "Missing, invalid, expired or revoked API key",
        403: "The key lacks the required scope",
        404: "Not found (or belongs to another project)",
        409: "Conflict (CONFLICT, PROTECTED_TAG, ARCHIVED, ...)",
        413: "Body too large",
        429: "Rate limited",
        503: "A dependency is unavailable",
    }.items()
}


class JSON(JSONResponse):
    """orjson-encoded JSON; handlers build camelCase dicts themselves.

    A JSONResponse subclass so FastAPI documents each route's response_model as its schema (for any
    other Response class the spec says `{"type": "string"}`).
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


Limit = Annotated[int, Query(ge=1, le=100, description="Page size (1..100)")]
Cursor = Annotated[str | None, Query(max_length=512, description="Opaque cursor from meta.nextCursor")]


def ok(data: Any, status: int = 200) -> JSON:
    return JSON(data, status_code=status)


def page_request(limit: int, cursor: str | None) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(limit=limit, cursor=cursor or "")


def page(items: list[Any], info: common_pb2.PageInfo, limit: int) -> JSON:
    return ok({"data": items, "meta": {"limit": limit, "nextCursor": info.next_cursor or None}})


def uuid_or_404(value: str, *, what: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"{what} '{value}' not found") from None
