"""Domain rules of evals: results, gate policies, harness triggers, callbacks, timeouts. No gRPC or HTTP."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import orjson
from sqlmodel.ext.asyncio.session import AsyncSession

from pvc.core.clock import rfc3339
from pvc.core.clock import utcnow as now
from pvc.core.context import Caller
from pvc.core.db import Database
from pvc.core.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from pvc.core.outbox import record_event
from pvc.core.pagination import (
    Page,
    clamp_limit,
    decode_time_cursor,
    encode_time_cursor,
)
from pvc.core.ssrf import OutboundPolicy
from pvc.evals import gate, signing
from pvc.evals import repository as repo
from pvc.evals.models import Evaluation, GatePolicy, Harness, outbox

log = logging.getLogger("pvc.evals")
HARNESS_NAME = re.compile(gate.HARNESS_NAME)
MAX_TEXT = 10_000
MAX_DETAILS_BYTES = 64 * 1024
MAX_METRICS = 100
MAX_TIMEOUT_SECONDS = 24 * 3600.0
CALLBACK_STATUSES = ("passed", "failed", "error", "running")


@dataclass(frozen=True)
class VersionInfo:
    id: uuid.UUID
    prompt_id: uuid.UUID
    number: int
    template: str
    variables: Any
    config: Any


class VersionLookup(Protocol):
    """The registry, asked which of these versions exist in the caller's project."""

    async def versions(self, *, caller: Caller, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, VersionInfo]: ...


# Sends a trigger to a harness: (url, secret, body, timeout) -> None on success, else an error text.
Sender = Callable[[str, str, bytes, float], Awaitable[str | None]]


@dataclass(frozen=True)
class GateView:
    can_promote: bool
    document: dict[str, Any]


def _invalid(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{name} {message}", details={"fields": {name: message}})


def parse_uuid(value: str, *, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _invalid(field, "must be a UUID") from None


def validate_harness_name(name: str) -> None:
    if not HARNESS_NAME.fullmatch(name):
        raise _invalid("harness", f"must match {gate.HARNESS_NAME}")


def validate_result(
    *, status: str, score: float | None, metrics: Any, details: Any, external_id: str, statuses: Sequence[str]
) -> None:
    if status not in statuses:
        raise _invalid("status", f"must be one of {', '.join(statuses)}")
    if score is not None and (not math.isfinite(score) or not 0 <= score <= 1):
        raise _invalid("score", "must be a number between 0 and 1")
    if not isinstance(metrics, dict) or len(metrics) > MAX_METRICS:
        raise _invalid("metrics", f"must be an object of at most {MAX_METRICS} numbers")
    for name, value in metrics.items():
        if (
            not name
            or isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _invalid(f"metrics.{name}", "must be a finite number")
    if len(orjson.dumps(details)) > MAX_DETAILS_BYTES:
        raise _invalid("details", f"must be at most {MAX_DETAILS_BYTES} bytes of JSON")
    if len(external_id) > 500:
        raise _invalid("externalId", "must be at most 500 characters")


def evaluation_document(ev: Evaluation) -> dict[str, Any]:
    """The REST shape of an evaluation; also what gate answers and events carry."""
    return {
        "id": str(ev.id),
        "versionId": str(ev.version_id),
        "promptId": str(ev.prompt_id),
        "harness": ev.harness,
        "status": ev.status,
        "score": ev.score,
        "metrics": ev.metrics,
        "details": ev.details,
        "externalId": ev.external_id or None,
        "createdAt": rfc3339(ev.created_at),
        "completedAt": rfc3339(ev.completed_at) if ev.completed_at else None,
    }


def _result(ev: Evaluation) -> gate.Result:
    return gate.Result(
        harness=ev.harness,
        status=ev.status,
        score=ev.score,
        metrics=ev.metrics,
        created_at=ev.created_at,
        completed_at=ev.completed_at,
        key=str(ev.id),
    )


async def _completed(session: AsyncSession, ev: Evaluation) -> None:
    await record_event(
        session, outbox, type="evaluation.completed", project_id=ev.project_id, data=evaluation_document(ev)
    )


class EvalsService:
    def __init__(
        self,
        db: Database,
        *,
        versions: VersionLookup,
        sender: Sender,
        policy: OutboundPolicy,
        public_url: str,
        callback_tolerance: int = 300,
    ) -> None:
        self.db = db
        self.lookup = versions
        self.sender = sender
        self.policy = policy
        self.public_url = public_url.rstrip("/")
        self.callback_tolerance = callback_tolerance
        # Trigger sends in flight; kept so they are not garbage-collected mid-way.
        self._sends: set[asyncio.Task[None]] = set()

    # -- results ---------------------------------------------------------------------------------------

    async def _version(self, *, caller: Caller, version_id: str) -> VersionInfo:
        vid = parse_uuid(version_id, field="versionId")
        found = (await self.lookup.versions(caller=caller, ids=[vid])).get(vid)
        if found is None:
            raise NotFound(f"version '{version_id}' not found", details={"versionId": version_id})
        return found

    async def create_evaluation(
        self,
        *,
        caller: Caller,
        version_id: str,
        harness: str,
        status: str,
        score: float | None,
        metrics: dict[str, Any],
        details: Any,
        external_id: str,
    ) -> Evaluation:
        validate_harness_name(harness)
        validate_result(
            status=status,
            score=score,
            metrics=metrics,
            details=details,
            external_id=external_id,
            statuses=gate.STATUSES,
        )
        version = await self._version(caller=caller, version_id=version_id)
        moment = now()
        ev = Evaluation(
            id=uuid.uuid4(),
            project_id=caller.project_id,
            prompt_id=version.prompt_id,
            version_id=version.id,
            harness=harness,
            status=status,
            score=score,
            metrics=metrics,
            details=details,
            external_id=external_id,
            created_at=moment,
            completed_at=moment if status in gate.FINISHED else None,
        )
        async with self.db.transaction() as session:
            session.add(ev)
            await session.flush()
            if status in gate.FINISHED:
                await _completed(session, ev)
        return ev

    async def get_evaluation(self, *, caller: Caller, evaluation_id: str) -> Evaluation:
        try:
            eid = uuid.UUID(evaluation_id)
        except ValueError:
            raise NotFound(f"evaluation '{evaluation_id}' not found") from None
        async with self.db.read() as session:
            ev = await repo.find_evaluation(session, evaluation_id=eid, project_id=caller.project_id)
        if ev is None:
            raise NotFound(f"evaluation '{evaluation_id}' not found")
        return ev

    async def list_evaluations(
        self, *, caller: Caller, limit: int, cursor: str, version_id: str, prompt_id: str, harness: str
    ) -> Page[Evaluation]:
        limit = clamp_limit(limit)
        after = decode_time_cursor(cursor)
        async with self.db.read() as session:
            rows = await repo.list_evaluations(
                session,
                project_id=caller.project_id,
                limit=limit,
                after=after,
                version_id=parse_uuid(version_id, field="versionId") if version_id else None,
                prompt_id=parse_uuid(prompt_id, field="promptId") if prompt_id else None,
                harness=harness,
            )
        page = rows[:limit]
        more = len(rows) > limit
        return Page(page, encode_time_cursor(page[-1].created_at, page[-1].id) if more else None)

    # -- gate ------------------------------------------------------------------------------------------

    async def check_gate(self, *, caller: Caller, version_id: str, prompt_id: str) -> GateView:
        if prompt_id:
            vid = parse_uuid(version_id, field="versionId")
            pid = parse_uuid(prompt_id, field="promptId")
        else:
            version = await self._version(caller=caller, version_id=version_id)
            vid, pid = version.id, version.prompt_id
        async with self.db.read() as session:
            stored = await repo.find_policy(session, project_id=caller.project_id, prompt_id=pid)
            evaluations = await repo.evaluations_of_version(
                session, project_id=caller.project_id, version_id=vid
            )
        policy = gate.validate_policy(stored.policy) if stored else dict(gate.DEFAULT_POLICY)
        answer = gate.evaluate(policy=policy, results=[_result(e) for e in evaluations], now=now())
        by_key = {str(e.id): e for e in evaluations}
        document = {
            "versionId": str(vid),
            "promptId": str(pid),
            "canPromote": answer.can_promote,
            "reasons": answer.reasons,
            "policy": policy,
            "evaluations": [evaluation_document(by_key[r.key]) for r in answer.latest],
            "checkedAt": rfc3339(now()),
        }
        return GateView(answer.can_promote, document)

    async def get_policy(self, *, caller: Caller, prompt_id: str) -> dict[str, Any]:
        pid = parse_uuid(prompt_id, field="promptId")
        async with self.db.read() as session:
            stored = await repo.find_policy(session, project_id=caller.project_id, prompt_id=pid)
        return gate.validate_policy(stored.policy) if stored else dict(gate.DEFAULT_POLICY)

    async def put_policy(
        self, *, caller: Caller, prompt_id: str, policy: Mapping[str, Any]
    ) -> dict[str, Any]:
        pid = parse_uuid(prompt_id, field="promptId")
        complete = gate.validate_policy(policy)
        async with self.db.transaction() as session:
            await repo.upsert_policy(
                session,
                policy=GatePolicy(
                    project_id=caller.project_id,
                    prompt_id=pid,
                    policy=complete,
                    updated_by=caller.actor_name,
                    updated_at=now(),
                ),
            )
        return complete

    # -- harnesses -------------------------------------------------------------------------------------

    async def put_harness(
        self, *, caller: Caller, name: str, url: str, timeout_seconds: float, secret: str
    ) -> tuple[Harness, str | None]:
        """Create or update; returns the harness and its secret when it is new or was replaced."""
        validate_harness_name(name)
        if not math.isfinite(timeout_seconds) or not 0 < timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise _invalid("timeoutSeconds", f"must be between 0 and {MAX_TIMEOUT_SECONDS:g}")
        if secret and not signing.valid_secret(secret):
            raise _invalid("secret", "must be whsec_ followed by base64 of at least 24 bytes")
        # The SSRF policy, before any transaction: it may wait on DNS. Checked again at every send.
        await self.policy.check(url)
        moment = now()
        async with self.db.transaction() as session:
            harness = await repo.find_harness(
                session, project_id=caller.project_id, name=name, for_update=True
            )
            shown: str | None = secret or None
            if harness is None:
                shown = secret or signing.new_secret()
                harness = Harness(
                    project_id=caller.project_id,
                    name=name,
                    url=url,
                    secret=shown,
                    timeout_seconds=timeout_seconds,
                    created_at=moment,
                    updated_at=moment,
                )
            else:
                harness.url = url
                harness.timeout_seconds = timeout_seconds
                harness.secret = secret or harness.secret
                harness.updated_at = moment
            session.add(harness)
        return harness, shown

    async def list_harnesses(self, *, caller: Caller) -> list[Harness]:
        async with self.db.read() as session:
            return await repo.list_harnesses(session, project_id=caller.project_id)

    # -- trigger and callback --------------------------------------------------------------------------

    async def trigger(self, *, caller: Caller, version_id: str, harness_name: str) -> Evaluation:
        validate_harness_name(harness_name)
        version = await self._version(caller=caller, version_id=version_id)
        moment = now()
        async with self.db.transaction() as session:
            harness = await repo.find_harness(session, project_id=caller.project_id, name=harness_name)
            if harness is None:
                raise NotFound(
                    f"harness '{harness_name}' is not configured", details={"harness": harness_name}
                )
            ev = Evaluation(
                id=uuid.uuid4(),
                project_id=caller.project_id,
                prompt_id=version.prompt_id,
                version_id=version.id,
                harness=harness_name,
                status="pending",
                metrics={},
                details=None,
                created_at=moment,
                deadline_at=moment + timedelta(seconds=harness.timeout_seconds),
            )
            session.add(ev)
        body = orjson.dumps(
            {
                "evaluationId": str(ev.id),
                "versionId": str(version.id),
                "promptId": str(version.prompt_id),
                "versionNumber": version.number,
                "harness": harness_name,
                "version": {
                    "template": version.template,
                    "variables": version.variables,
                    "config": version.config,
                },
                "callbackUrl": f"{self.public_url}/api/v1/evaluations/{ev.id}/callback",
            }
        )
        # Sent after commit, so a fast callback always finds the row; the answer does not wait for it.
        task = asyncio.create_task(
            self._send(ev.id, harness.url, harness.secret, body, harness.timeout_seconds)
        )
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        return ev

    async def _send(
        self, evaluation_id: uuid.UUID, url: str, secret: str, body: bytes, wait_seconds: float
    ) -> None:
        try:
            failure = await self.sender(url, secret, body, wait_seconds)
        except Exception as exc:  # the send must never kill the task silently
            failure = f"trigger failed: {exc!r}"
        try:
            async with self.db.transaction() as session:
                ev = await repo.find_evaluation(
                    session, evaluation_id=evaluation_id, project_id=None, for_update=True
                )
                if ev is None or ev.status != "pending":
                    return  # already answered (a fast callback) or timed out
                if failure is None:
                    ev.status = "running"
                else:
                    ev.status, ev.completed_at = "error", now()
                    ev.details = {"error": failure}
                session.add(ev)
                if failure is not None:
                    await session.flush()
                    await _completed(session, ev)
        except Exception:
            log.exception("recording the trigger outcome of %s failed", evaluation_id)

    async def callback(
        self, *, evaluation_id: str, body: bytes, msg_id: str, timestamp: str, signature: str
    ) -> Evaluation:
        try:
            eid = uuid.UUID(evaluation_id)
        except ValueError:
            raise NotFound(f"evaluation '{evaluation_id}' not found") from None
        async with self.db.transaction() as session:
            ev = await repo.find_evaluation(session, evaluation_id=eid, project_id=None, for_update=True)
            if ev is None:
                raise NotFound(f"evaluation '{evaluation_id}' not found")
            harness = await repo.find_harness(session, project_id=ev.project_id, name=ev.harness)
            if harness is None:
                raise Unauthenticated("no harness secret can verify this callback")
            # Authenticate before reading anything the caller sent.
            signing.verify(
                secret=harness.secret,
                msg_id=msg_id,
                timestamp=timestamp,
                signature=signature,
                body=body,
                tolerance=self.callback_tolerance,
            )
            answer = _parse_callback(body)
            if ev.status in gate.FINISHED:
                raise Conflict(f"evaluation {ev.id} is already {ev.status}", details={"status": ev.status})
            ev.status = answer["status"]
            ev.score = answer["score"]
            ev.metrics = answer["metrics"]
            ev.details = answer["details"]
            ev.external_id = answer["externalId"]
            if ev.status in gate.FINISHED:
                ev.completed_at = now()
            session.add(ev)
            await session.flush()
            if ev.status in gate.FINISHED:
                await _completed(session, ev)
        return ev


async def expire_overdue(db: Database, *, batch: int = 100) -> int:
    """Turn triggered evaluations whose harness never answered into `error`. Returns how many."""
    async with db.transaction() as session:
        overdue = await repo.claim_overdue(session, now=now(), limit=batch)
        for ev in overdue:
            ev.status, ev.completed_at = "error", now()
            ev.details = {"error": "the harness did not answer within its timeout"}
            session.add(ev)
        await session.flush()
        for ev in overdue:
            await _completed(session, ev)
    return len(overdue)


async def run_timeouts(db: Database, *, every: float) -> None:
    """The sweeper beside the server, so nothing stays pending or running forever."""
    while True:
        try:
            await expire_overdue(db)
        except Exception:
            log.exception("timeout sweep failed")
        await asyncio.sleep(every)


def _parse_callback(body: bytes) -> dict[str, Any]:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _invalid("body", "is not valid JSON") from None
    if not isinstance(raw, dict):
        raise _invalid("body", "must be a JSON object")
    allowed = {"status", "score", "metrics", "details", "externalId"}
    unknown = set(raw) - allowed
    if unknown:
        raise _invalid(sorted(unknown)[0], "is not allowed")
    status, score = raw.get("status"), raw.get("score")
    if not isinstance(status, str):
        raise _invalid("status", "is required")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise _invalid("score", "must be a number")
    metrics = raw.get("metrics") or {}
    external_id = raw.get("externalId") or ""
    if not isinstance(external_id, str):
        raise _invalid("externalId", "must be a string")
    validate_result(
        status=status,
        score=score,
        metrics=metrics,
        details=raw.get("details"),
        external_id=external_id,
        statuses=CALLBACK_STATUSES,
    )
    return {
        "status": status,
        "score": float(score) if score is not None else None,
        "metrics": metrics,
        "details": raw.get("details"),
        "externalId": external_id,
    }
