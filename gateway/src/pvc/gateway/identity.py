"""API keys: authentication with a short-lived per-replica cache, and the bootstrap admin key."""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select

from pvc.core.apikeys import hash_api_key, key_prefix
from pvc.core.db import Database
from pvc.core.errors import Unauthenticated
from pvc.gateway.models import ApiKey, Project

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


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: uuid.UUID
    project_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    rate_limit_per_second: float | None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


@dataclass(slots=True)
class _Cached:
    principal: Principal
    expires_at: datetime | None
    cached_until: float


class KeyStore:
    def __init__(self, *, db: Database, pepper: str, cache_seconds: float) -> None:
        self.db = db
        self.pepper = pepper
        self.cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}

    async def authenticate(self, token: str) -> Principal:
        if not token.startswith("pvc_") or len(token) > 200:
            raise Unauthenticated("invalid API key")
        digest = hash_api_key(pepper=self.pepper, key=token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or cached.cached_until < now:
            cached = await self._load(token, digest, now)
        if cached.expires_at is not None and cached.expires_at <= datetime.now(UTC):
            raise Unauthenticated("API key has expired")
        return cached.principal

    async def _load(self, token: str, digest: str, now: float) -> _Cached:
        async with self.db.read() as session:
            rows = (
                await session.exec(
                    select(ApiKey).where(ApiKey.prefix == key_prefix(token), col(ApiKey.revoked_at).is_(None))
                )
            ).all()
        # Compare every candidate in constant time; the prefix only narrows the search.
        match = next((row for row in rows if hmac.compare_digest(row.key_hash, digest)), None)
        if match is None:
            self._cache.pop(digest, None)
            raise Unauthenticated("invalid API key")
        cached = _Cached(
            principal=Principal(
                key_id=match.id,
                project_id=match.project_id,
                name=match.name,
                scopes=frozenset(match.scopes),
                rate_limit_per_second=match.rate_limit_per_second,
            ),
            expires_at=match.expires_at,
            cached_until=now + self.cache_seconds,
        )
        self._cache[digest] = cached
        return cached

    def forget(self, key_id: uuid.UUID) -> None:
        for digest, cached in list(self._cache.items()):
            if cached.principal.key_id == key_id:
                del self._cache[digest]


async def ensure_bootstrap(*, db: Database, pepper: str, key: str) -> uuid.UUID:
    """Create project `default` and the bootstrap admin key if missing; safe on every replica start."""
    now = datetime.now(UTC)
    async with db.transaction() as session:
        await session.execute(
            insert(Project)
            .values(id=uuid.uuid4(), name=DEFAULT_PROJECT, created_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        project_id: uuid.UUID = (
            await session.execute(sa.select(col(Project.id)).where(col(Project.name) == DEFAULT_PROJECT))
        ).scalar_one()
        await session.execute(
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
