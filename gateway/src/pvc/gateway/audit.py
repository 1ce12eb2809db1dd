"""The audit log: which rule audits a route, what a row holds, and the batched writer.

Every non-GET route under `/api/v1` is audited automatically (see docs/identity.md): the action is
derived from the method and the route template (`POST /prompts` -> `prompt.create`,
`PUT /prompts/{prompt}` -> `prompt.update`, `POST /prompts/{prompt}/promote` -> `prompt.promote`),
`after` is the response body with secrets redacted, and `before` is the same resource read through
the route's GET twin when one exists. A route may override the derived action with
`openapi_extra={"x-audit-action": "..."}` or opt out with `{"x-audit": False}`; a POST that only
needs the `read` scope (render) changes nothing and is not audited. 401 and 403 answers on any
`/api/v1` route are audited with outcome `denied`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi.routing import APIRoute
from sqlmodel import col, select

from pvc.core.db import Database
from pvc.core.pagination import (
    decode_time_cursor,
    encode_time_cursor,
)
from pvc.gateway.models import AuditLog

log = logging.getLogger("pvc.gateway.audit")

API_PREFIX = "/api/v1/"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REDACTED = "[redacted]"
_VERBS = {"POST": "set", "PUT": "update", "PATCH": "update", "DELETE": "delete"}
_SECRET_NAMES = frozenset({"key", "apikey", "token", "pepper", "authorization", "secrets", "password"})
_SECRET_SUFFIXES = ("secret", "password", "token", "apikey")
_SECRET_VALUE = re.compile(r"^(pvc_[0-9A-Za-z]{20,}|whsec_\S+)$")
_MAX_QUEUE = 100_000


@dataclass(frozen=True, slots=True)
class AuditRule:
    action: str
    resource_type: str
    # Name of the path parameter naming the resource (None: a collection, the id comes from the response).
    resource_param: str | None
    # Path parameters before it, joined in front of a non-UUID value (a tag name is unique per prompt).
    parent_params: tuple[str, ...]
    audited: bool
    # Read `before` through the GET route with the same template.
    fetch_before: bool
    scope: str | None


def _singular(noun: str) -> str:
    noun = noun.replace("-", "_")
    if noun.endswith("ies"):
        return noun[:-3] + "y"
    if noun.endswith("s") and not noun.endswith("ss"):
        return noun[:-1]
    return noun


def _param(segment: str) -> str | None:
    return segment[1:-1].split(":")[0] if segment.startswith("{") and segment.endswith("}") else None


def derive_rule(
    *, method: str, path: str, has_get: bool, scope: str | None, extra: dict[str, Any]
) -> AuditRule:
    """The audit rule of one operation, from its method and template alone (plus optional overrides)."""
    segments = [s for s in path.removeprefix(API_PREFIX).split("/") if s]
    params = [_param(s) for s in segments]
    last_param_at = max((i for i, p in enumerate(params) if p), default=-1)
    if params and params[-1]:
        # .../{noun}/{id}: the item itself.
        noun = segments[-2] if len(segments) > 1 else segments[-1]
        verb = "read" if method == "GET" else _VERBS[method]
        param_name: str | None = params[-1]
        fetch_before = method != "GET" and has_get
    elif method == "GET" or (method == "POST" and has_get) or method in ("PUT", "PATCH", "DELETE"):
        # A collection (list / create) or a singleton sub-resource such as /prompts/{prompt}/gate.
        noun = segments[-1]
        verb = {"GET": "list", "POST": "create"}.get(method) or _VERBS[method]
        param_name = params[last_param_at] if last_param_at >= 0 else None
        fetch_before = method in ("PUT", "PATCH", "DELETE") and has_get
        if method == "GET" and not noun.endswith("s"):
            verb = "read"  # a singleton such as /prompts/{prompt}/gate
    else:
        # An action: /prompts/{prompt}/promote/override -> prompt.promote.override; /metrics/ingest.
        if last_param_at >= 1:
            noun = segments[last_param_at - 1]
            verb = ".".join(segments[last_param_at + 1 :])
            param_name = params[last_param_at]
        else:
            noun, verb, param_name = segments[0], ".".join(segments[1:]) or "call", None
        fetch_before = False
    resource_type = _singular(noun)
    action = str(extra.get("x-audit-action") or f"{resource_type}.{verb.replace('-', '_')}")
    parents: tuple[str, ...] = ()
    if param_name is not None:
        at = params.index(param_name)
        parents = tuple(p for p in params[:at] if p)
    audited = method in MUTATING and extra.get("x-audit", True) is not False and scope != "read"
    return AuditRule(
        action=action,
        resource_type=str(extra.get("x-audit-resource") or resource_type),
        resource_param=param_name,
        parent_params=parents,
        audited=audited,
        fetch_before=fetch_before and audited,
        scope=scope,
    )


def route_scope(route: APIRoute) -> str | None:
    return next(
        (getattr(d.call, "required_scope", None) for d in route.dependant.dependencies if d.call), None
    )


def build_rules(routes: list[Any]) -> dict[tuple[str, str], AuditRule]:
    api = [r for r in routes if isinstance(r, APIRoute) and r.path_format.startswith(API_PREFIX)]
    gets = {r.path_format for r in api if "GET" in (r.methods or ())}
    rules: dict[tuple[str, str], AuditRule] = {}
    for route in api:
        for method in route.methods or ():
            rules[(method, route.path_format)] = derive_rule(
                method=method,
                path=route.path_format,
                has_get=route.path_format in gets,
                scope=route_scope(route),
                extra=route.openapi_extra or {},
            )
    return rules


def resource_id(rule: AuditRule, path_params: dict[str, Any], body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("id"), str) and rule.resource_param is None:
        return str(body["id"])
    if rule.resource_param is None:
        return None
    value = str(path_params.get(rule.resource_param, ""))
    if isinstance(body, dict) and isinstance(body.get("id"), str) and rule.parent_params == ():
        # `{prompt}` may be a name; the response names the canonical id.
        return str(body["id"])
    if rule.parent_params and not _is_uuid(value):
        return "/".join([*(str(path_params.get(p, "")) for p in rule.parent_params), value])
    return value or None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def redact(value: Any) -> Any:
    """Copy of a JSON value with every secret-looking field or value replaced."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if _secret_name(str(k)) and v is not None else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.match(value):
        return REDACTED
    return value


def _secret_name(name: str) -> bool:
    lowered = name.lower().replace("_", "").replace("-", "")
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


# -- rows ---------------------------------------------------------------------------------------------


def audit_json(row: AuditLog) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "at": row.at.isoformat().replace("+00:00", "Z"),
        "actorId": row.actor_id,
        "actorName": row.actor_name,
        "action": row.action,
        "resourceType": row.resource_type,
        "resourceId": row.resource_id,
        "before": row.before,
        "after": row.after,
        "outcome": row.outcome,
        "requestId": row.request_id,
        "ip": row.ip,
    }


class AuditWriter:
    """Queues rows in memory and inserts them in batches; `close()` flushes, so a graceful stop loses none."""

    def __init__(self, *, db: Database, flush_seconds: float) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self._rows: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(
        self,
        *,
        project_id: uuid.UUID | None,
        actor_id: str | None,
        actor_name: str | None,
        action: str,
        resource_type: str,
        resource_id: str | None,
        before: Any,
        after: Any,
        outcome: str,
        request_id: str | None,
        ip: str | None,
    ) -> None:
        if len(self._rows) >= _MAX_QUEUE:
            log.error("audit queue full; dropping a row for %s", action)
            return
        self._rows.append(
            {
                "id": uuid.uuid4(),
                "project_id": project_id,
                "at": datetime.now(UTC),
                "actor_id": actor_id,
                "actor_name": actor_name,
                "action": action,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "before": redact(before) if before is not None else None,
                "after": redact(after) if after is not None else None,
                "outcome": outcome,
                "request_id": request_id,
                "ip": ip,
            }
        )
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Let a burst accumulate into one INSERT.
            await asyncio.sleep(self.flush_seconds)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # keep the rows and retry; the database may be restarting
                log.warning("could not write audit rows (will retry): %s", exc)
                self._wake.set()
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            async with self.db.transaction() as session:
                await session.exec(sa.insert(AuditLog), params=rows)
        except BaseException:
            self._rows[:0] = rows
            raise

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            log.exception("could not write %d audit rows at shutdown", len(self._rows))


async def list_audit(
    *,
    db: Database,
    project_id: uuid.UUID,
    include_unscoped: bool,
    filters: dict[str, Any],
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[AuditLog], str | None]:
    """Newest first, keyset-paginated on (at, id)."""
    after = decode_time_cursor(cursor)
    project = col(AuditLog.project_id) == project_id
    if include_unscoped:
        project = sa.or_(project, col(AuditLog.project_id).is_(None))
    query = select(AuditLog).where(project)
    for field, value in filters.items():
        if value is not None:
            query = query.where(getattr(AuditLog, field) == value)
    if since is not None:
        query = query.where(col(AuditLog.at) >= since)
    if until is not None:
        query = query.where(col(AuditLog.at) < until)
    if after is not None:
        query = query.where(sa.tuple_(col(AuditLog.at), col(AuditLog.id)) < sa.tuple_(*after))
    query = query.order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc()).limit(limit + 1)
    async with db.read() as session:
        rows = list((await session.exec(query)).all())
    if len(rows) > limit:
        last = rows[limit - 1]
        return rows[:limit], encode_time_cursor(last.at, last.id)
    return rows, None
