"""Domain rules of deployments and metrics. No gRPC or HTTP types here."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from pvc.core.bucketing import assign
from pvc.core.clock import rfc3339
from pvc.core.clock import utcnow as now
from pvc.core.context import Caller
from pvc.core.db import Database
from pvc.core.errors import Conflict, NotFound, ValidationFailed
from pvc.core.outbox import record_event
from pvc.core.pagination import (
    Page,
    clamp_limit,
    decode_time_cursor,
    encode_time_cursor,
)
from pvc.deployments import repository as repo
from pvc.deployments.models import Deployment, outbox
from pvc.deployments.repository import Aggregate
from pvc.deployments.statistics import Sample, welch
from pvc.deployments.versions import VersionDirectory

log = logging.getLogger("pvc.deployments")

STATUSES = ("active", "paused")
METRIC_TYPES = frozenset({"cost", "latency", "quality", "custom"})
GUARDRAIL_STATS = ("mean", "p95")
MAX_VARIANTS = 20
MAX_GUARDRAILS = 20
MAX_BATCH = 10_000
MAX_NAME = 100
METRIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
POINT_FIELDS = frozenset(
    {"versionId", "type", "name", "value", "unit", "timestamp", "sessionId", "deploymentId", "dimensions"}
)
DEFAULT_MIN_SAMPLES = 30
# The longest gap between two guardrail checks of one deployment in one process, and the gap after a
# check as a multiple of the time it took (see evaluate_guardrails).
GUARDRAIL_INTERVAL = 1.0
CHECK_COST_FACTOR = 10.0
CHEAP_CHECK_SECONDS = 0.05


@dataclass(frozen=True)
class Resolved:
    deployment: Deployment
    variant: dict[str, Any]
    sticky: bool


@dataclass(frozen=True)
class VersionAggregates:
    version_id: uuid.UUID
    version_number: int
    metrics: list[Aggregate]


def _invalid(field: str, message: str, *, code: str | None = None, **extra: Any) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", code=code, details={"fields": {field: message}, **extra})


def parse_uuid(value: Any, *, field: str) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise _invalid(field, "must be a UUID")


def parse_time(value: str, *, field: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(field, "must be an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise _invalid(field, "must carry a UTC offset (e.g. Z)")
    return moment


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# -- validation of deployments ---------------------------------------------------------------------------


def validate_variants(variants: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shape, weights (>= 0, sum 100 -> INVALID_WEIGHTS), at most one control, no version twice."""
    if not variants:
        raise _invalid("variants", "at least one variant is required")
    if len(variants) > MAX_VARIANTS:
        raise _invalid("variants", f"at most {MAX_VARIANTS} variants")
    seen: set[uuid.UUID] = set()
    cleaned: list[dict[str, Any]] = []
    for index, variant in enumerate(variants):
        version_id = parse_uuid(variant.get("versionId"), field=f"variants[{index}].versionId")
        if version_id in seen:
            raise _invalid(f"variants[{index}].versionId", "the same version appears twice")
        seen.add(version_id)
        weight: Any = variant.get("weight")
        if not _is_number(weight) or weight < 0:
            raise _invalid(f"variants[{index}].weight", "must be a number >= 0", code="INVALID_WEIGHTS")
        cleaned.append(
            {
                "versionId": str(version_id),
                "weight": float(weight),
                "isControl": bool(variant.get("isControl")),
            }
        )
    total = math.fsum(v["weight"] for v in cleaned)
    if abs(total - 100.0) > 1e-9:
        raise ValidationFailed(
            f"variant weights must sum to 100 (they sum to {total:g})",
            code="INVALID_WEIGHTS",
            details={"fields": {"variants": "weights must sum to 100"}, "sum": total},
        )
    if sum(1 for v in cleaned if v["isControl"]) > 1:
        raise _invalid("variants", "at most one variant may be the control")
    return cleaned


def validate_guardrails(guardrails: Any) -> list[dict[str, Any]]:
    if not isinstance(guardrails, list):
        raise _invalid("guardrails", "must be a list")
    if len(guardrails) > MAX_GUARDRAILS:
        raise _invalid("guardrails", f"at most {MAX_GUARDRAILS} guardrails")
    cleaned = []
    for index, rule in enumerate(guardrails):
        field = f"guardrails[{index}]"
        if not isinstance(rule, dict):
            raise _invalid(field, "must be an object")
        unknown = set(rule) - {"metric", "stat", "max", "min", "minSamples"}
        if unknown:
            raise _invalid(f"{field}.{sorted(unknown)[0]}", "unknown field")
        metric = rule.get("metric")
        if not isinstance(metric, str) or not METRIC_NAME.fullmatch(metric):
            raise _invalid(f"{field}.metric", "must be a metric name")
        stat = rule.get("stat", "mean")
        if stat not in GUARDRAIL_STATS:
            raise _invalid(f"{field}.stat", "must be 'mean' or 'p95'")
        bounds = {k: rule[k] for k in ("max", "min") if rule.get(k) is not None}
        if not bounds:
            raise _invalid(field, "needs max or min")
        for key, bound in bounds.items():
            if not _is_number(bound):
                raise _invalid(f"{field}.{key}", "must be a number")
        min_samples = rule.get("minSamples", DEFAULT_MIN_SAMPLES)
        if not isinstance(min_samples, int) or isinstance(min_samples, bool) or not 1 <= min_samples <= 10**9:
            raise _invalid(f"{field}.minSamples", "must be an integer >= 1")
        cleaned.append({"metric": metric, "stat": stat, **bounds, "minSamples": min_samples})
    return cleaned


def deployment_event_data(deployment: Deployment, **extra: Any) -> dict[str, Any]:
    return {
        "deploymentId": str(deployment.id),
        "promptId": str(deployment.prompt_id),
        "name": deployment.name,
        "status": deployment.status,
        "variants": deployment.variants,
        "guardrails": deployment.guardrails,
        **extra,
    }


# -- validation of metric points --------------------------------------------------------------------------


@dataclass(slots=True)
class Point:
    version_id: uuid.UUID
    deployment_id: uuid.UUID | None
    session_id: str | None
    type: str
    name: str
    value: float
    unit: str
    ts: datetime
    dimensions: str | None


def parse_points(body: bytes | str) -> list[Point]:
    """All-or-nothing: the first bad item fails the whole batch, naming its index.

    This is the only validation a batch gets (the gateway forwards the bytes), so it enforces what
    the gateway's request models enforce elsewhere: no unknown fields, no coercion, and only text
    PostgreSQL can store (orjson already refuses invalid UTF-8 and lone surrogates; NUL is checked
    here) and numbers a 64-bit JSON encoder can write back.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _invalid("body", "is not valid JSON") from None
    if isinstance(document, dict) and not document.keys() <= {"metrics"}:
        raise _invalid(sorted(document.keys() - {"metrics"})[0], "unknown field")
    items = document.get("metrics") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise _invalid("metrics", "must be a list")
    if not 1 <= len(items) <= MAX_BATCH:
        raise _invalid("metrics", f"must hold 1 to {MAX_BATCH} points")
    received = now()
    # A batch names few distinct versions and deployments: parse each id once.
    ids: dict[str, uuid.UUID] = {}
    return [_parse_point(item, index, received, ids) for index, item in enumerate(items)]


def _bad(index: int, key: str, message: str) -> ValidationFailed:
    field = f"metrics[{index}].{key}" if key else f"metrics[{index}]"
    return ValidationFailed(f"{field}: {message}", details={"index": index, "fields": {field: message}})


def _uuid(value: Any, ids: dict[str, uuid.UUID]) -> uuid.UUID:
    parsed = ids.get(value) if isinstance(value, str) else None
    if parsed is None:
        parsed = uuid.UUID(value)
        ids[value] = parsed
    return parsed


def _dimension(key: str, value: Any) -> bool:
    if "\x00" in key:
        return False
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    return isinstance(value, bool)


def _parse_point(item: Any, index: int, received: datetime, ids: dict[str, uuid.UUID]) -> Point:
    if not isinstance(item, dict):
        raise _bad(index, "", "must be an object")
    if not POINT_FIELDS.issuperset(item):
        raise _bad(index, sorted(set(item) - POINT_FIELDS)[0], "unknown field")
    try:
        version_id = _uuid(item["versionId"], ids)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _bad(index, "versionId", "must be a UUID") from None
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in METRIC_TYPES:
        raise _bad(index, "type", "must be one of cost, latency, quality, custom")
    name = item.get("name")
    if not isinstance(name, str) or not METRIC_NAME.fullmatch(name):
        raise _bad(index, "name", "must match ^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
    value: Any = item.get("value")
    if not _is_number(value):
        raise _bad(index, "value", "must be a finite number")
    unit = item.get("unit")
    if unit is None:
        unit = ""
    if not isinstance(unit, str) or len(unit) > 32 or "\x00" in unit:
        raise _bad(index, "unit", "must be a string of at most 32 characters")
    ts = received
    stamp = item.get("timestamp")
    if stamp is not None:
        try:
            ts = datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            raise _bad(index, "timestamp", "must be an RFC 3339 timestamp") from None
        if ts.tzinfo is None:
            raise _bad(index, "timestamp", "must carry a UTC offset (e.g. Z)")
    session_id = item.get("sessionId")
    if session_id is not None and (
        not isinstance(session_id, str) or not 1 <= len(session_id) <= 256 or "\x00" in session_id
    ):
        raise _bad(index, "sessionId", "must be a string of 1 to 256 characters without NUL")
    deployment_id = None
    if item.get("deploymentId") is not None:
        try:
            deployment_id = _uuid(item["deploymentId"], ids)
        except (TypeError, ValueError, AttributeError):
            raise _bad(index, "deploymentId", "must be a UUID") from None
    dimensions = item.get("dimensions")
    encoded = None
    if dimensions is not None:
        if not isinstance(dimensions, dict) or len(dimensions) > 32:
            raise _bad(index, "dimensions", "must be an object of at most 32 entries")
        if not all(_dimension(k, v) for k, v in dimensions.items()):
            raise _bad(
                index, "dimensions", "values must be strings, booleans or numbers below 2^63, without NUL"
            )
        encoded = orjson.dumps(dimensions).decode()
    return Point(version_id, deployment_id, session_id, kind, name, float(value), unit, ts, encoded)


# -- the service ----------------------------------------------------------------------------------------


class DeploymentsService:
    def __init__(
        self,
        db: Database,
        versions: VersionDirectory,
        *,
        guardrail_interval: float = GUARDRAIL_INTERVAL,
        check_cost_factor: float = CHECK_COST_FACTOR,
        cheap_check_seconds: float = CHEAP_CHECK_SECONDS,
    ) -> None:
        self.db = db
        self.versions = versions
        self.guardrail_interval = guardrail_interval
        self.check_cost_factor = check_cost_factor
        self.cheap_check_seconds = cheap_check_seconds
        # Per deployment: when the next check may run inline, and which checks are running here.
        self._next_check: dict[uuid.UUID, float] = {}
        self._checking: set[uuid.UUID] = set()
        self._deferred: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- deployments ---------------------------------------------------------------------------------

    async def create_deployment(
        self,
        *,
        caller: Caller,
        prompt_id: str,
        name: str,
        variants: Sequence[dict[str, Any]],
        status: str,
        guardrails: Any,
    ) -> Deployment:
        prompt = parse_uuid(prompt_id, field="promptId")
        if not name or len(name) > MAX_NAME:
            raise _invalid("name", f"must be 1 to {MAX_NAME} characters")
        status = status or "active"
        if status not in STATUSES:
            raise _invalid("status", "must be 'active' or 'paused'")
        cleaned = await self._checked_variants(caller=caller, prompt_id=prompt, variants=variants)
        rules = validate_guardrails(guardrails)
        moment = now()
        deployment = Deployment(
            id=uuid.uuid4(),
            project_id=caller.project_id,
            prompt_id=prompt,
            name=name,
            status=status,
            variants=cleaned,
            guardrails=rules,
            seed=secrets.token_hex(8),
            paused_reason=None,
            created_at=moment,
            updated_at=moment,
        )
        try:
            async with self.db.transaction() as session:
                session.add(deployment)
                await session.flush()
                await record_event(
                    session,
                    outbox,
                    type="deployment.created",
                    project_id=caller.project_id,
                    data=deployment_event_data(deployment),
                )
        except IntegrityError as exc:
            raise self._already_active(prompt) from exc
        return deployment

    async def get_deployment(self, *, caller: Caller, deployment_id: str) -> Deployment:
        async with self.db.read() as session:
            return await self._deployment(session, caller=caller, deployment_id=deployment_id)

    async def list_deployments(
        self, *, caller: Caller, prompt_id: str, status: str, limit: int, cursor: str
    ) -> Page[Deployment]:
        limit = clamp_limit(limit)
        prompt = parse_uuid(prompt_id, field="promptId") if prompt_id else None
        if status and status not in (*STATUSES, "archived"):
            raise _invalid("status", "must be active, paused or archived")
        after = decode_time_cursor(cursor)
        async with self.db.read() as session:
            rows = await repo.list_deployments(
                session,
                project_id=caller.project_id,
                prompt_id=prompt,
                status=status or None,
                limit=limit,
                after=after,
            )
        page = rows[:limit]
        more = len(rows) > limit
        return Page(page, encode_time_cursor(page[-1].created_at, page[-1].id) if more else None)

    async def update_deployment(
        self,
        *,
        caller: Caller,
        deployment_id: str,
        status: str | None,
        variants: Sequence[dict[str, Any]] | None,
        guardrails: Any | None,
    ) -> Deployment:
        if status is not None and status not in STATUSES:
            raise _invalid("status", "must be 'active' or 'paused' (DELETE archives)")
        rules = validate_guardrails(guardrails) if guardrails is not None else None
        current = await self.get_deployment(caller=caller, deployment_id=deployment_id)
        cleaned = (
            await self._checked_variants(caller=caller, prompt_id=current.prompt_id, variants=variants)
            if variants is not None
            else None
        )
        try:
            async with self.db.transaction() as session:
                deployment = await self._deployment(
                    session, caller=caller, deployment_id=deployment_id, for_update=True
                )
                if deployment.status == "archived":
                    raise Conflict(
                        "an archived deployment cannot change",
                        code="DEPLOYMENT_INACTIVE",
                        details={"status": "archived"},
                    )
                changes: dict[str, Any] = {}
                if status is not None and status != deployment.status:
                    changes["status"] = [deployment.status, status]
                    deployment.status = status
                    if status == "active":
                        deployment.paused_reason = None
                if cleaned is not None and cleaned != deployment.variants:
                    changes["variants"] = [deployment.variants, cleaned]
                    deployment.variants = cleaned
                if rules is not None and rules != deployment.guardrails:
                    changes["guardrails"] = [deployment.guardrails, rules]
                    deployment.guardrails = rules
                if changes:
                    deployment.updated_at = now()
                    session.add(deployment)
                    await session.flush()
                    await record_event(
                        session,
                        outbox,
                        type="deployment.updated",
                        project_id=caller.project_id,
                        data=deployment_event_data(deployment, changes=changes),
                    )
        except IntegrityError as exc:
            raise self._already_active(current.prompt_id) from exc
        return deployment

    async def archive_deployment(self, *, caller: Caller, deployment_id: str) -> Deployment:
        async with self.db.transaction() as session:
            deployment = await self._deployment(
                session, caller=caller, deployment_id=deployment_id, for_update=True
            )
            if deployment.status != "archived":
                previous = deployment.status
                moment = now()
                deployment.status = "archived"
                deployment.archived_at = moment
                deployment.updated_at = moment
                session.add(deployment)
                await record_event(
                    session,
                    outbox,
                    type="deployment.updated",
                    project_id=caller.project_id,
                    data=deployment_event_data(deployment, changes={"status": [previous, "archived"]}),
                )
        return deployment

    async def resolve(self, *, caller: Caller, deployment_id: str, session_id: str) -> Resolved:
        if len(session_id) > 256:
            raise _invalid("sessionId", "at most 256 characters")
        deployment = await self.get_deployment(caller=caller, deployment_id=deployment_id)
        if deployment.status != "active":
            raise Conflict(
                f"deployment is {deployment.status}",
                code="DEPLOYMENT_INACTIVE",
                details={"deploymentId": str(deployment.id), "status": deployment.status},
            )
        index, sticky = assign(
            seed=deployment.seed,
            weights=[v["weight"] for v in deployment.variants],
            session_id=session_id or None,
        )
        return Resolved(deployment, deployment.variants[index], sticky)

    async def active_deployment(self, *, caller: Caller, prompt_id: str) -> Deployment | None:
        prompt = parse_uuid(prompt_id, field="promptId")
        async with self.db.read() as session:
            return await repo.active_deployment(session, project_id=caller.project_id, prompt_id=prompt)

    # -- results ---------------------------------------------------------------------------------------

    async def results(self, *, caller: Caller, deployment_id: str, start: str, end: str) -> dict[str, Any]:
        begin, finish = parse_time(start, field="from"), parse_time(end, field="to")
        async with self.db.read() as session:
            deployment = await self._deployment(session, caller=caller, deployment_id=deployment_id)
            rows = await repo.aggregates(
                session,
                project_id=caller.project_id,
                version_ids=[uuid.UUID(v["versionId"]) for v in deployment.variants],
                start=max(begin, deployment.created_at) if begin else deployment.created_at,
                end=finish,
                deployment_id=deployment.id,
            )
        return results_document(deployment, rows, start=begin, end=finish)

    # -- metrics ---------------------------------------------------------------------------------------

    async def ingest(self, *, caller: Caller, body: bytes) -> int:
        points = parse_points(body)
        version_ids = {p.version_id for p in points}
        found = await self.versions.lookup(caller=caller, version_ids=version_ids)
        unknown = version_ids - set(found)
        if unknown:
            index = next(i for i, p in enumerate(points) if p.version_id in unknown)
            raise NotFound(
                f"metrics[{index}].versionId: version not found",
                details={"index": index, "versionIds": sorted(str(u) for u in unknown)},
            )
        deployment_ids = {p.deployment_id for p in points if p.deployment_id is not None}
        project = caller.project_id
        async with self.db.transaction() as session:
            if deployment_ids:
                known = await repo.existing_deployments(
                    session, project_id=project, deployment_ids=list(deployment_ids)
                )
                if deployment_ids - known:
                    index = next(
                        i for i, p in enumerate(points) if p.deployment_id and p.deployment_id not in known
                    )
                    raise NotFound(
                        f"metrics[{index}].deploymentId: deployment not found", details={"index": index}
                    )
            await repo.copy_points(
                session,
                (
                    (
                        project,
                        found[p.version_id].prompt_id,
                        p.version_id,
                        p.deployment_id,
                        p.session_id,
                        p.type,
                        p.name,
                        p.value,
                        p.unit,
                        p.ts,
                        p.dimensions,
                    )
                    for p in points
                ),
            )
            await repo.register_series(
                session, ((v.id, project, v.prompt_id, v.number) for v in found.values())
            )
        try:
            await self.evaluate_guardrails(caller=caller, prompt_ids={v.prompt_id for v in found.values()})
        except Exception:
            # The points are committed: the answer must say so, or a retry would store them twice.
            # The next batch of these prompts checks their guardrails again.
            log.exception("guardrail check after an ingest of %d points failed", len(points))
        return len(points)

    async def version_metrics(
        self, *, caller: Caller, version_id: str, start: str, end: str, type: str, name: str
    ) -> list[Aggregate]:
        version = parse_uuid(version_id, field="versionId")
        if type and type not in METRIC_TYPES:
            raise _invalid("type", "must be one of cost, latency, quality, custom")
        found = await self.versions.lookup(caller=caller, version_ids=[version])
        if version not in found:
            raise NotFound(f"version {version_id} not found", details={"versionId": version_id})
        async with self.db.read() as session:
            return await repo.aggregates(
                session,
                project_id=caller.project_id,
                version_ids=[version],
                start=parse_time(start, field="from"),
                end=parse_time(end, field="to"),
                type=type or None,
                names=[name] if name else None,
            )

    async def prompt_metrics(
        self, *, caller: Caller, prompt_id: str, start: str, end: str
    ) -> list[VersionAggregates]:
        prompt = parse_uuid(prompt_id, field="promptId")
        begin, finish = parse_time(start, field="from"), parse_time(end, field="to")
        async with self.db.read() as session:
            numbers = await repo.series_of_prompt(session, project_id=caller.project_id, prompt_id=prompt)
            rows = await repo.aggregates(
                session, project_id=caller.project_id, version_ids=list(numbers), start=begin, end=finish
            )
        by_version: dict[uuid.UUID, list[Aggregate]] = {}
        for row in rows:
            by_version.setdefault(row.version_id, []).append(row)
        ordered = sorted(by_version, key=lambda v: -numbers[v])
        return [VersionAggregates(v, numbers[v], by_version[v]) for v in ordered]

    # -- guardrails ------------------------------------------------------------------------------------

    async def evaluate_guardrails(self, *, caller: Caller, prompt_ids: set[uuid.UUID]) -> None:
        """Check the active, guarded deployments of these prompts; pause any that breaks a rule.

        A check aggregates every point since the deployment started, so its cost grows with the
        deployment. A check faster than `cheap_check_seconds` lets the next batch be checked at once;
        after a slower one (t seconds) the next check of that deployment waits
        min(`check_cost_factor` x t, `guardrail_interval`). So a small deployment is checked with
        every batch, before the ingest call returns, and one with millions of points at most once
        per interval.
        Batches arriving in the gap (or while a check runs) share one deferred check, which runs as
        soon as the gap is over and sees all of them.
        """
        async with self.db.read() as session:
            candidates = await repo.guarded_deployments(
                session, project_id=caller.project_id, prompt_ids=prompt_ids
            )
        for deployment_id in candidates:
            if deployment_id in self._checking or monotonic() < self._next_check.get(deployment_id, 0.0):
                self._defer(deployment_id)
            else:
                await self._evaluate(deployment_id)

    def _defer(self, deployment_id: uuid.UUID) -> None:
        if deployment_id not in self._deferred:
            task = asyncio.create_task(self._evaluate_later(deployment_id))
            self._deferred[deployment_id] = task
            self._tasks.add(task)  # a strong reference until it is done
            task.add_done_callback(self._tasks.discard)

    async def _evaluate_later(self, deployment_id: uuid.UUID) -> None:
        while True:
            delay = self._next_check.get(deployment_id, 0.0) - monotonic()
            if delay <= 0 and deployment_id not in self._checking:
                break
            await asyncio.sleep(max(delay, 0.01))
        # Leave the queue before checking: a batch committed during this check schedules the next one.
        self._deferred.pop(deployment_id, None)
        try:
            await self._evaluate(deployment_id)
        except Exception:
            log.exception("deferred guardrail check of deployment %s failed", deployment_id)

    async def _evaluate(self, deployment_id: uuid.UUID) -> None:
        self._checking.add(deployment_id)
        started = monotonic()
        try:
            await self._check(deployment_id)
        finally:
            self._checking.discard(deployment_id)
            finished = monotonic()
            took = finished - started
            gap = (
                0.0
                if took < self.cheap_check_seconds
                else min(self.guardrail_interval, took * self.check_cost_factor)
            )
            self._next_check[deployment_id] = finished + gap

    async def _check(self, deployment_id: uuid.UUID) -> None:
        async with self.db.transaction() as session:
            # SKIP LOCKED: a replica already evaluating this deployment sees these points too.
            deployment = await repo.lock_for_evaluation(session, deployment_id=deployment_id)
            if deployment is None:
                return
            breach = await self._breach(session, deployment)
            if breach is None:
                return
            moment = now()
            deployment.status = "paused"
            deployment.paused_reason = {**breach, "at": rfc3339(moment)}
            deployment.updated_at = moment
            session.add(deployment)
            data = deployment_event_data(deployment, reason=deployment.paused_reason)
            await record_event(
                session,
                outbox,
                type="deployment.guardrail_tripped",
                project_id=deployment.project_id,
                data=data,
            )
            await record_event(
                session,
                outbox,
                type="deployment.updated",
                project_id=deployment.project_id,
                data={**data, "changes": {"status": ["active", "paused"]}},
            )
            log.warning("guardrail paused deployment %s: %s", deployment.id, breach)

    async def _breach(self, session: AsyncSession, deployment: Deployment) -> dict[str, Any] | None:
        rules = deployment.guardrails
        rows = await repo.aggregates(
            session,
            project_id=deployment.project_id,
            version_ids=[uuid.UUID(v["versionId"]) for v in deployment.variants],
            start=deployment.created_at,
            end=None,
            names=sorted({r["metric"] for r in rules}),
            deployment_id=deployment.id,
        )
        by_key = {(str(r.version_id), r.name): r for r in rows}
        for rule in rules:
            for variant in deployment.variants:
                row = by_key.get((variant["versionId"], rule["metric"]))
                if row is None or row.count < rule["minSamples"]:
                    continue
                observed = row.mean if rule["stat"] == "mean" else row.p95
                broken = ("max" in rule and observed > rule["max"]) or (
                    "min" in rule and observed < rule["min"]
                )
                if broken:
                    return {
                        "guardrail": rule,
                        "versionId": variant["versionId"],
                        "versionNumber": variant.get("versionNumber"),
                        "observed": observed,
                        "samples": row.count,
                    }
        return None

    # -- helpers ---------------------------------------------------------------------------------------

    async def _checked_variants(
        self, *, caller: Caller, prompt_id: uuid.UUID, variants: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        cleaned = validate_variants(variants)
        ids = [uuid.UUID(v["versionId"]) for v in cleaned]
        found = await self.versions.lookup(caller=caller, version_ids=ids)
        for index, version_id in enumerate(ids):
            info = found.get(version_id)
            if info is None:
                raise NotFound(
                    f"variants[{index}].versionId: version not found",
                    details={"fields": {f"variants[{index}].versionId": "not found"}},
                )
            if info.prompt_id != prompt_id:
                raise _invalid(f"variants[{index}].versionId", "belongs to another prompt")
            cleaned[index]["versionNumber"] = info.number
        return [
            {
                "versionId": v["versionId"],
                "versionNumber": v["versionNumber"],
                "weight": v["weight"],
                "isControl": v["isControl"],
            }
            for v in cleaned
        ]

    async def _deployment(
        self, session: AsyncSession, *, caller: Caller, deployment_id: str, for_update: bool = False
    ) -> Deployment:
        try:
            parsed = uuid.UUID(deployment_id)
        except ValueError:
            parsed = None
        deployment = (
            await repo.find_deployment(
                session, project_id=caller.project_id, deployment_id=parsed, for_update=for_update
            )
            if parsed
            else None
        )
        if deployment is None:
            raise NotFound(f"deployment '{deployment_id}' not found", details={"deploymentId": deployment_id})
        return deployment

    @staticmethod
    def _already_active(prompt_id: uuid.UUID) -> Conflict:
        return Conflict(
            "the prompt already has an active deployment; pause or archive it first",
            details={"promptId": str(prompt_id)},
        )


# -- the results document ---------------------------------------------------------------------------------


def aggregate_json(row: Aggregate) -> dict[str, Any]:
    return {
        "name": row.name,
        "type": row.type,
        "unit": row.unit,
        "count": row.count,
        "sum": row.sum,
        "mean": row.mean,
        "min": row.min,
        "max": row.max,
        "p50": row.p50,
        "p95": row.p95,
        "p99": row.p99,
        "stddev": row.stddev,
    }


def results_document(
    deployment: Deployment, rows: list[Aggregate], *, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """Per variant: weight, counts, per-metric aggregates and, against the control, Welch's t-test."""
    by_version: dict[str, dict[str, Aggregate]] = {}
    for row in rows:
        by_version.setdefault(str(row.version_id), {})[row.name] = row
    control = next((v for v in deployment.variants if v["isControl"]), None)
    control_rows = by_version.get(control["versionId"], {}) if control else {}
    variants = []
    for variant in deployment.variants:
        metrics = by_version.get(variant["versionId"], {})
        entries: dict[str, Any] = {}
        for name, row in metrics.items():
            entry = aggregate_json(row)
            base = control_rows.get(name)
            if control is not None and variant is not control and base is not None:
                entry["vsControl"] = comparison_json(row, base)
            entries[name] = entry
        variants.append(
            {
                "versionId": variant["versionId"],
                "versionNumber": variant.get("versionNumber"),
                "weight": variant["weight"],
                "isControl": variant["isControl"],
                "samples": max((r.count for r in metrics.values()), default=0),
                "metrics": entries,
            }
        )
    return {
        "deploymentId": str(deployment.id),
        "status": deployment.status,
        "pausedReason": deployment.paused_reason,
        "window": {
            "from": rfc3339(max(start, deployment.created_at) if start else deployment.created_at),
            "to": rfc3339(end) if end else None,
        },
        "method": "welch-t",
        "control": control["versionId"] if control else None,
        "variants": variants,
    }


def comparison_json(variant: Aggregate, control: Aggregate) -> dict[str, Any]:
    result = welch(
        Sample(variant.count, variant.mean, variant.stddev),
        Sample(control.count, control.mean, control.stddev),
    )
    base: dict[str, Any] = {
        "samples": {"variant": variant.count, "control": control.count},
        "delta": variant.mean - control.mean,
        "relativeDelta": (variant.mean - control.mean) / control.mean if control.mean else None,
    }
    if result is None:
        # Fewer than two points on a side: no variance, so no interval and no test.
        return {**base, "ci95": None, "pValue": None, "t": None, "df": None}
    return {
        **base,
        "ci95": [result.ci95[0], result.ci95[1]],
        "pValue": result.p_value,
        "t": result.t,
        "df": result.df if math.isfinite(result.df) else None,
    }
