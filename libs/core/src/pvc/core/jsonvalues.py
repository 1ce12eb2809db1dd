"""JSON values that cross gRPC as strings, parsed and checked where they are stored."""

from __future__ import annotations

from typing import Any

import orjson

from pvc.core.errors import ValidationFailed


def parse_json(text: str, *, field: str, default: Any, kind: type) -> Any:
    if not text:
        return default
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"{field} is not valid JSON", details={"fields": {field: "invalid"}}) from exc
    if value is None:
        return default
    if not isinstance(value, kind):
        raise ValidationFailed(
            f"{field} must be a JSON {kind.__name__}", details={"fields": {field: "wrong type"}}
        )
    return value


def dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()
