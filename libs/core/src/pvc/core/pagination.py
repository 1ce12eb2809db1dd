"""Opaque keyset cursors: a base64url JSON of the last row's sort key, never an offset."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

from pvc.core.errors import ValidationFailed

T = TypeVar("T")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next (None on the last page)."""

    items: list[T]
    next_cursor: str | None


def clamp_limit(limit: int) -> int:
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(
            f"limit must be between 1 and {MAX_LIMIT}", details={"fields": {"limit": "out of range"}}
        )
    return limit


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str, *, arity: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        key = None
    if not isinstance(key, list) or len(key) != arity:
        raise ValidationFailed("cursor is not valid", details={"fields": {"cursor": "malformed"}})
    return key


def encode_time_cursor(at: datetime, row_id: uuid.UUID) -> str:
    """Cursor of a list ordered by (timestamp, id) descending."""
    return encode_cursor([at.isoformat(), str(row_id)])


def decode_time_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    key = decode_cursor(cursor or "", arity=2)
    if key is None:
        return None
    try:
        return datetime.fromisoformat(str(key[0])), uuid.UUID(str(key[1]))
    except ValueError:
        raise ValidationFailed("cursor is not valid", details={"fields": {"cursor": "malformed"}}) from None


def decode_int_cursor(cursor: str | None) -> int | None:
    """Cursor of a list ordered by an integer (a version number, a sequence) descending."""
    key = decode_cursor(cursor or "", arity=1)
    if key is None:
        return None
    if not isinstance(key[0], int) or isinstance(key[0], bool):
        raise ValidationFailed("cursor is not valid", details={"fields": {"cursor": "malformed"}})
    return key[0]
