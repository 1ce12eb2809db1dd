"""The audit log: which rule audits a route, what a row holds, and the group-commit writer.

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
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi.routing import APIRoute
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DataError, IntegrityError
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
# Backoff between attempts while audit writes fail.
_RETRY_FIRST = 0.1
_RETRY_MAX = 5.0

AUDIT_ROWS_WRITTEN = Counter("pvc_audit_rows_written_total", "Audit rows committed")
AUDIT_WRITE_FAILURES = Counter("pvc_audit_write_failures_total", "Failed audit write attempts (rows kept)")
AUDIT_ROWS_DROPPED = Counter("pvc_audit_rows_dropped_total", "Audit rows given up on (logged)", ["reason"])
AUDIT_QUEUE = Gauge("pvc_audit_queue_rows", "Audit rows waiting to be written")
AUDIT_WRITE_SECONDS = Histogram(
    "pvc_audit_write_seconds",
    "Time to commit one batch of audit rows",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


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


@dataclass(slots=True)
class _Queued:
    row: dict[str, Any]
    # True once the row is committed; False when it is not (yet): a failed write, a refused row, shutdown.
    done: asyncio.Future[bool]


class AuditWriter:
    """Group commit of audit rows: a request's answer leaves only after its row is committed.

    `write()` queues a row and waits for it. One writer task takes everything queued, inserts it in one
    transaction and wakes those waiters; rows queued meanwhile go into the next transaction. Nothing
    sleeps on purpose, so an idle writer adds one insert round trip to a request, and under load many
    requests share one commit.

    The change the row describes is already committed by the service when the row is written, so a
    failing audit write never turns the answer into an error: the waiter gives up after `wait_seconds`
    (or at once when the write fails), the answer goes out, and the row stays queued and is retried with
    backoff until the database takes it. While writes fail, requests do not wait at all. Every failure
    is logged and counted (`pvc_audit_*` metrics). Inserts are idempotent (`ON CONFLICT (id) DO
    NOTHING`), so a commit whose acknowledgement was lost is safely retried. Rows that can never be
    stored, a full queue, and rows still unwritten at shutdown are logged in full, so the log is the last
    place they exist.
    """

    def __init__(self, *, db: Database, wait_seconds: float) -> None:
        self.db = db
        self.wait_seconds = wait_seconds
        self._queue: list[_Queued] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # False after a failed write (or a waiter timing out) until a write succeeds.
        self.healthy = True

    async def write(
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
    ) -> bool:
        """Queue a row and wait until it is committed; False when it is queued but not (yet) written."""
        row = {
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
        if len(self._queue) >= _MAX_QUEUE:
            AUDIT_ROWS_DROPPED.labels("queue_full").inc()
            log.error("audit queue full (%d rows); row not written: %s", _MAX_QUEUE, _dump(row))
            return False
        queued = _Queued(row, asyncio.get_running_loop().create_future())
        self._queue.append(queued)
        AUDIT_QUEUE.set(len(self._queue))
        self._wake.set()
        if not self.healthy or self._task is None:
            return False
        try:
            # Shielded: a request that stops waiting (timeout, client gone) leaves its row queued.
            return await asyncio.wait_for(asyncio.shield(queued.done), self.wait_seconds)
        except TimeoutError:
            if self.healthy:
                self.healthy = False
                log.error(
                    "audit write did not commit within %.1f s; answering without waiting until it does",
                    self.wait_seconds,
                )
            return False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        backoff = _RETRY_FIRST
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            try:
                await self._insert(batch)
            except asyncio.CancelledError:
                self._queue[:0] = batch
                raise
            except Exception as exc:
                self._queue[:0] = batch  # oldest first, retried before anything newer
                self.healthy = False
                AUDIT_WRITE_FAILURES.inc()
                log.error(
                    "could not write %d audit rows (%s); they stay queued, retrying in %.1f s",
                    len(self._queue),
                    exc,
                    backoff,
                )
                for queued in batch:
                    _resolve(queued, False)  # the answers go out; the rows wait for the database
                AUDIT_QUEUE.set(len(self._queue))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _RETRY_MAX)
                self._wake.set()
                continue
            if not self.healthy:
                log.warning("audit rows are being written again")
            self.healthy = True
            backoff = _RETRY_FIRST
            AUDIT_QUEUE.set(len(self._queue))
            for queued in batch:
                _resolve(queued, True)

    async def _insert(self, batch: list[_Queued]) -> None:
        """One transaction for the batch; a row the database refuses as such is logged and dropped."""
        started = time.monotonic()
        try:
            await self._insert_rows([q.row for q in batch])
        except (DataError, IntegrityError):
            if len(batch) == 1:
                AUDIT_ROWS_DROPPED.labels("invalid").inc()
                log.exception("the database refuses this audit row; not written: %s", _dump(batch[0].row))
                _resolve(batch[0], False)
                return
            # Find the bad row(s): alone, each row either goes in or is dropped (already-written rows
            # are skipped by ON CONFLICT, so a retry after a transient failure here is harmless).
            for queued in batch:
                await self._insert([queued])
            return
        AUDIT_WRITE_SECONDS.observe(time.monotonic() - started)
        AUDIT_ROWS_WRITTEN.inc(len(batch))

    async def _insert_rows(self, rows: list[dict[str, Any]]) -> None:
        statement = insert(AuditLog).on_conflict_do_nothing(index_elements=["id"])
        async with self.db.transaction() as session:
            await session.exec(statement, params=rows)

    async def close(self) -> None:
        """Stop the writer and write what is queued; what cannot be written is logged row by row."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            await self._insert(batch)
        except Exception:
            log.exception("could not write %d audit rows at shutdown; logging them instead", len(batch))
            for queued in batch:
                log.error("audit row not written: %s", _dump(queued.row))
        for queued in batch:
            _resolve(queued, False)


def _resolve(queued: _Queued, committed: bool) -> None:
    if not queued.done.done():
        queued.done.set_result(committed)


def _dump(row: dict[str, Any]) -> str:
    return orjson.dumps(row, default=str).decode()


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
