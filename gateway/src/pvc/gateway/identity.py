"""Projects and API keys: authentication with a per-replica cache that events invalidate, key minting,
revocation, and the bootstrap admin key.

The cache maps HMAC(pepper, key) to the key's principal. Every replica subscribes to
`pvc.events.api_key.*` and evicts a revoked key as soon as the event arrives (milliseconds after the
revoking transaction commits). While that subscription is live the cache TTL is long (a safety net);
while it is down the TTL drops to `key_cache_seconds` (1 s), so a revocation still takes effect within
1 s on every replica.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import col, select

from pvc.core.apikeys import generate_api_key, hash_api_key, key_prefix
from pvc.core.db import Database
from pvc.core.errors import Conflict, Forbidden, NotFound, Unauthenticated, Unavailable, ValidationFailed
from pvc.core.events import subject_for
from pvc.core.outbox import record_event
from pvc.core.pagination import (
    decode_time_cursor,
    encode_cursor,
)
from pvc.gateway.models import ApiKey, Project, outbox

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg

log = logging.getLogger("pvc.gateway.identity")

SCOPES = (
    "read",
    "prompts:write",
    "promote",
    "promote:override",
    "evals:write",
    "deployments:write",
    "metrics:write",
    "webhooks:admin",
    "keys:admin",
    "admin",
)
DEFAULT_PROJECT = "default"
# `lastUsedAt` is written at most this often per key and replica, by a background task.
LAST_USED_EVERY_SECONDS = 60.0
KEY_EVENTS = subject_for("api_key.*")


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: uuid.UUID
    project_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    rate_limit_per_second: float | None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def can_grant(self, scopes: Sequence[str]) -> bool:
        """A key can only hand out (or take away) scopes it holds itself; `admin` holds them all."""
        return "admin" in self.scopes or set(scopes) <= self.scopes


@dataclass(slots=True)
class _Cached:
    principal: Principal
    expires_at: datetime | None
    cached_until: float


class KeyStore:
    def __init__(
        self, *, db: Database, pepper: str, cache_seconds: float, cache_seconds_with_events: float = 30.0
    ) -> None:
        self.db = db
        self.pepper = pepper
        self.cache_seconds = cache_seconds
        self.cache_seconds_with_events = max(cache_seconds, cache_seconds_with_events)
        self._cache: dict[str, _Cached] = {}
        # key id -> monotonic time of the last `lastUsedAt` write we scheduled; and the pending writes.
        self._touched: dict[uuid.UUID, float] = {}
        self._pending_use: dict[uuid.UUID, datetime] = {}
        self._events_live = False
        # Loads in flight, by key digest: concurrent misses for one key share one database query.
        self._loading: dict[str, asyncio.Future[_Cached]] = {}

    # -- authentication (the hot path: a dict lookup and one HMAC) ---------------------------------

    async def authenticate(self, token: str) -> Principal:
        if not token.startswith("pvc_") or len(token) > 200:
            raise Unauthenticated("invalid API key")
        digest = hash_api_key(pepper=self.pepper, key=token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or cached.cached_until < now:
            cached = await self._load_once(token, digest, now)
        if cached.expires_at is not None and cached.expires_at <= datetime.now(UTC):
            raise Unauthenticated("API key has expired")
        principal = cached.principal
        last = self._touched.get(principal.key_id)
        if last is None or now - last >= LAST_USED_EVERY_SECONDS:
            self._touched[principal.key_id] = now
            self._pending_use[principal.key_id] = datetime.now(UTC)
        return principal

    async def _load_once(self, token: str, digest: str, now: float) -> _Cached:
        """One load per key at a time, so an expiring entry under load is not a herd of queries."""
        pending = self._loading.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._load(token, digest, now))
            self._loading[digest] = pending
            pending.add_done_callback(lambda _: self._loading.pop(digest, None))
        # Shielded: a waiter that goes away (client disconnect) must not cancel the others' load.
        return await asyncio.shield(pending)

    async def _load(self, token: str, digest: str, now: float) -> _Cached:
        try:
            async with self.db.read() as session:
                rows = (
                    await session.exec(
                        select(ApiKey).where(
                            ApiKey.prefix == key_prefix(token), col(ApiKey.revoked_at).is_(None)
                        )
                    )
                ).all()
        except (SQLAlchemyError, OSError) as exc:
            raise Unavailable("cannot check the API key: the database is unavailable") from exc
        # Compare every candidate in constant time; the prefix only narrows the search.
        match = next((row for row in rows if hmac.compare_digest(row.key_hash, digest)), None)
        if match is None:
            self._cache.pop(digest, None)
            raise Unauthenticated("invalid API key")
        ttl = self.cache_seconds_with_events if self._events_live else self.cache_seconds
        cached = _Cached(
            principal=Principal(
                key_id=match.id,
                project_id=match.project_id,
                name=match.name,
                scopes=frozenset(match.scopes),
                rate_limit_per_second=match.rate_limit_per_second,
            ),
            expires_at=match.expires_at,
            cached_until=now + ttl,
        )
        self._cache[digest] = cached
        return cached

    def forget(self, key_id: uuid.UUID) -> None:
        for digest, cached in list(self._cache.items()):
            if cached.principal.key_id == key_id:
                del self._cache[digest]

    def clear(self) -> None:
        self._cache.clear()

    # -- background work: lastUsedAt writes and event-driven invalidation --------------------------

    async def flush_last_used(self) -> None:
        pending, self._pending_use = self._pending_use, {}
        if not pending:
            return
        async with self.db.transaction() as session:
            for key_id, at in pending.items():
                await session.exec(
                    sa.update(ApiKey)
                    .where(col(ApiKey.id) == key_id)
                    .where(sa.or_(col(ApiKey.last_used_at).is_(None), col(ApiKey.last_used_at) < at))
                    .values(last_used_at=at)
                )

    async def run_last_used_writer(self, *, every: float = 1.0) -> None:
        try:
            while True:
                await asyncio.sleep(every)
                try:
                    await self.flush_last_used()
                except Exception as exc:  # the database may be briefly down; retry next round
                    log.warning("could not record lastUsedAt: %s", exc)
        finally:
            with suppress(Exception):
                await self.flush_last_used()

    async def follow_events(self, link: Any) -> None:
        """Subscribe to api_key events on the gateway's NATS link (once it is connected) and evict keys.

        `link` is the app's NatsLink; it connects in the background, so wait for its client. The NATS
        client resubscribes by itself after a reconnect; events missed while disconnected are covered by
        dropping to the short TTL and clearing the cache when the connection comes back.
        """
        while link.client is None:  # noqa: ASYNC110 - the link offers no event to wait on
            await asyncio.sleep(0.1)
        client: NATS = link.client
        subscription = await client.subscribe(KEY_EVENTS, cb=self._on_event)
        try:
            was_connected = False
            while True:
                connected = bool(client.is_connected)
                if connected and not was_connected:
                    # Anything cached while we were deaf may have been revoked meanwhile.
                    self.clear()
                self._events_live = connected
                was_connected = connected
                await asyncio.sleep(0.1)
        finally:
            self._events_live = False
            with suppress(Exception):
                await subscription.unsubscribe()

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = orjson.loads(msg.data)
            key_id = uuid.UUID(str(event["data"]["id"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed api_key event on %s", msg.subject)
            return
        self.forget(key_id)


# -- projects and keys (the data behind /api/v1/projects and /api/v1/api-keys) ----------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def project_json(project: Project) -> dict[str, Any]:
    return {"id": str(project.id), "name": project.name, "createdAt": _iso(project.created_at)}


def key_json(key: ApiKey) -> dict[str, Any]:
    """A key as the API shows it: never the secret nor its hash."""
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "projectId": str(key.project_id),
        "expiresAt": _iso(key.expires_at),
        "rateLimitPerSecond": key.rate_limit_per_second,
        "lastUsedAt": _iso(key.last_used_at),
        "revokedAt": _iso(key.revoked_at),
        "createdBy": str(key.created_by) if key.created_by else None,
        "createdAt": _iso(key.created_at),
    }


def _event_data(key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "expiresAt": _iso(key.expires_at),
        "revokedAt": _iso(key.revoked_at),
    }


async def create_project(*, db: Database, name: str) -> Project:
    project = Project(id=uuid.uuid4(), name=name, created_at=datetime.now(UTC))
    try:
        async with db.transaction() as session:
            session.add(project)
    except IntegrityError:
        raise Conflict(f"a project named '{name}' already exists") from None
    return project


async def list_projects(*, db: Database, limit: int, cursor: str | None) -> tuple[list[Project], str | None]:
    after = decode_time_cursor(cursor)
    query = select(Project).order_by(col(Project.created_at).desc(), col(Project.id).desc()).limit(limit + 1)
    if after is not None:
        query = query.where(sa.tuple_(col(Project.created_at), col(Project.id)) < sa.tuple_(*after))
    async with db.read() as session:
        rows = list((await session.exec(query)).all())
    return _page(rows, limit, lambda p: [_iso(p.created_at), str(p.id)])


async def get_project(*, db: Database, project_id: uuid.UUID) -> Project:
    async with db.read() as session:
        project = await session.get(Project, project_id)
    if project is None:
        raise NotFound(f"project '{project_id}' not found")
    return project


async def create_key(
    *,
    db: Database,
    creator: Principal,
    name: str,
    scopes: list[str],
    project_id: uuid.UUID | None,
    expires_at: datetime | None,
    rate_limit_per_second: float | None,
    pepper: str,
) -> tuple[ApiKey, str]:
    """Mint a key; returns the row and the secret (which is never stored)."""
    if not creator.can_grant(scopes):
        missing = sorted(set(scopes) - creator.scopes)
        raise Forbidden(
            "a key can only mint keys with scopes it holds itself", details={"missingScopes": missing}
        )
    target_project = project_id or creator.project_id
    if target_project != creator.project_id and "admin" not in creator.scopes:
        raise Forbidden("only an 'admin' key can create keys in another project")
    if rate_limit_per_second is not None and "admin" not in creator.scopes:
        raise Forbidden("only an 'admin' key can set rateLimitPerSecond")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise ValidationFailed("expiresAt must be in the future", details={"fields": {"expiresAt": "past"}})
    if target_project != creator.project_id:
        await get_project(db=db, project_id=target_project)
    secret = generate_api_key()
    key = ApiKey(
        id=uuid.uuid4(),
        project_id=target_project,
        name=name,
        prefix=key_prefix(secret),
        key_hash=hash_api_key(pepper=pepper, key=secret),
        scopes=sorted(set(scopes), key=SCOPES.index),
        rate_limit_per_second=rate_limit_per_second,
        expires_at=expires_at,
        created_by=creator.key_id,
        created_at=datetime.now(UTC),
    )
    async with db.transaction() as session:
        session.add(key)
        await session.flush()
        await record_event(
            session, outbox, type="api_key.created", project_id=target_project, data=_event_data(key)
        )
    return key, secret


async def list_keys(
    *, db: Database, project_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[ApiKey], str | None]:
    after = decode_time_cursor(cursor)
    query = (
        select(ApiKey)
        .where(col(ApiKey.project_id) == project_id)
        .order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(sa.tuple_(col(ApiKey.created_at), col(ApiKey.id)) < sa.tuple_(*after))
    async with db.read() as session:
        rows = list((await session.exec(query)).all())
    return _page(rows, limit, lambda k: [_iso(k.created_at), str(k.id)])


async def get_key(*, db: Database, project_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    async with db.read() as session:
        key = await session.get(ApiKey, key_id)
    if key is None or key.project_id != project_id:
        raise NotFound(f"API key '{key_id}' not found")
    return key


async def revoke_key(*, db: Database, revoker: Principal, key_id: uuid.UUID) -> ApiKey:
    """Revoke (idempotent); the `api_key.revoked` event evicts it from every replica's cache."""
    async with db.transaction() as session:
        key = (
            await session.exec(select(ApiKey).where(col(ApiKey.id) == key_id).with_for_update())
        ).one_or_none()
        if key is None or key.project_id != revoker.project_id:
            raise NotFound(f"API key '{key_id}' not found")
        if not revoker.can_grant(key.scopes):
            raise Forbidden("a key can only revoke keys whose scopes it holds itself")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
            session.add(key)
            await session.flush()
            await record_event(
                session, outbox, type="api_key.revoked", project_id=key.project_id, data=_event_data(key)
            )
    return key


def _page(rows: list[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    if len(rows) > limit:
        return rows[:limit], encode_cursor(key(rows[limit - 1]))
    return rows, None


async def ensure_bootstrap(*, db: Database, pepper: str, key: str) -> uuid.UUID:
    """Create project `default` and the bootstrap admin key if missing; safe on every replica start."""
    now = datetime.now(UTC)
    async with db.transaction() as session:
        await session.exec(
            insert(Project)
            .values(id=uuid.uuid4(), name=DEFAULT_PROJECT, created_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        project_id: uuid.UUID = (
            await session.exec(select(col(Project.id)).where(col(Project.name) == DEFAULT_PROJECT))
        ).one()
        await session.exec(
            insert(ApiKey)
            .values(
                id=uuid.uuid4(),
                project_id=project_id,
                name="bootstrap-admin",
                prefix=key_prefix(key),
                key_hash=hash_api_key(pepper=pepper, key=key),
                scopes=["admin"],
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["key_hash"])
        )
    return project_id
