"""The serving hot path: `GET /prompts/{prompt}/resolve` answered from a per-replica cache.

A warm answer costs no gRPC call and no database query: the entry holds the pre-encoded JSON body of
every variant (or of the tagged version) and, for a deployment, its seed and weights, so the sticky
bucket is computed here. Entries are evicted by events (a plain NATS subscription on `pvc.events.>`),
so a tag move, promotion or deployment change is visible within about a second on every replica, and
expire after a short TTL as a safety net. While the services behind it are unreachable, an expired
(but not evicted) entry keeps serving; a cold miss then answers 503 quickly.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from pvc.core.bucketing import assign
from pvc.core.errors import NotFound, PvcError, Unavailable
from pvc.core.events import SUBJECT_PREFIX
from pvc.gateway.auth import require
from pvc.gateway.clients import Backends
from pvc.gateway.identity import Principal
from pvc.v1 import deployments_pb2, registry_pb2

log = logging.getLogger("pvc.gateway.serving")

Key = tuple[uuid.UUID, str, str]  # (project, prompt id or name, tag)
# Event types after which a prompt may resolve differently.
EVICTING_PREFIXES = ("tag.", "promotion.", "deployment.", "prompt.archived")
MAX_ENTRIES = 100_000


@dataclass(slots=True)
class Answer:
    project_id: uuid.UUID
    prompt_id: str
    # None: the tag's version (one body); else the deployment's seed, and one body per variant.
    seed: str | None
    weights: list[float]
    bodies: list[bytes]
    fresh_until: float
    stale_until: float

    def body(self, session_id: str | None) -> bytes:
        if self.seed is None:
            return self.bodies[0]
        index, _ = assign(seed=self.seed, weights=self.weights, session_id=session_id)
        return self.bodies[index]


def served_version(version: registry_pb2.Version) -> dict[str, Any]:
    return {
        "id": version.id,
        "number": version.number,
        "template": version.template,
        "variables": orjson.loads(version.variables_json or "[]"),
        "config": orjson.loads(version.config_json or "{}"),
    }


def encode(version: registry_pb2.Version, deployment_id: str | None) -> bytes:
    return orjson.dumps(
        {
            "version": served_version(version),
            "deploymentId": deployment_id,
            "source": "deployment" if deployment_id else "tag",
        }
    )


class ResolveCache:
    def __init__(self, *, backends: Backends, ttl: float, stale: float, deadline: float) -> None:
        self.backends = backends
        self.ttl = ttl
        self.stale = stale
        self.deadline = deadline
        self._entries: dict[Key, Answer] = {}
        # The keys (by id and by name, per tag) under which each prompt is cached, for eviction.
        self._keys: dict[tuple[uuid.UUID, str], set[Key]] = {}
        self._filling: dict[Key, asyncio.Task[Answer]] = {}
        # When each prompt (project, prompt id) was last evicted, and when everything last was: a fill
        # that started before an eviction of its prompt must not store what it read.
        self._evicted_at: dict[tuple[uuid.UUID, str], float] = {}
        self._cleared_at = 0.0

    def warm(self, *, principal: Principal, prompt: str, tag: str, session_id: str | None) -> bytes | None:
        """The answer from the cache without waiting for anything, or None on a miss.

        An entry past its TTL is still answered while one background fill refreshes it, so busy
        prompts never stall on the refresh; evicted entries are gone and miss.
        """
        key = (principal.project_id, prompt, tag)
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = time.monotonic()
        if entry.fresh_until <= now:
            if entry.stale_until <= now:
                return None
            if key not in self._filling:
                self._start_fill(key, principal)
        return entry.body(session_id)

    async def resolve(self, *, principal: Principal, prompt: str, tag: str, session_id: str | None) -> bytes:
        key = (principal.project_id, prompt, tag)
        entry = self._entries.get(key)
        if entry is not None and entry.fresh_until > time.monotonic():
            return entry.body(session_id)
        return (await self._refresh(key, entry, principal)).body(session_id)

    async def _refresh(self, key: Key, entry: Answer | None, principal: Principal) -> Answer:
        task = self._filling.get(key) or self._start_fill(key, principal)
        try:
            return await asyncio.shield(task)
        except Unavailable:
            current = self._entries.get(key)
            if current is not None and current.stale_until > time.monotonic():
                return current
            self._entries.pop(key, None)
            raise

    def _start_fill(self, key: Key, principal: Principal) -> asyncio.Task[Answer]:
        # One fill per key at a time, however many requests miss together.
        task = asyncio.create_task(self._fill(key, principal))
        self._filling[key] = task
        task.add_done_callback(self._filled)
        return task

    def _filled(self, task: asyncio.Task[Answer]) -> None:
        for key, running in list(self._filling.items()):
            if running is task:
                del self._filling[key]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so a background refresh that failed is not reported as unhandled.
            log.debug("resolve cache fill failed: %s", task.exception())

    async def _fill(self, key: Key, principal: Principal) -> Answer:
        started = time.monotonic()
        try:
            answer = await self._fetch(key, principal)
        except Unavailable:
            raise  # an expired entry keeps serving until stale_until
        except PvcError:
            # The prompt no longer resolves (e.g. the tag is gone): drop what is cached for it.
            self._entries.pop(key, None)
            raise
        evicted = max(self._cleared_at, self._evicted_at.get((answer.project_id, answer.prompt_id), 0.0))
        if evicted < started:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
                self._keys.clear()
            self._entries[key] = answer
            self._keys.setdefault((answer.project_id, answer.prompt_id), set()).add(key)
        return answer

    async def _fetch(self, key: Key, principal: Principal) -> Answer:
        project_id, ref, tag = key
        b = self.backends
        prompt = await b.call(
            b.registry.GetPrompt,
            registry_pb2.GetPromptRequest(prompt=ref),
            principal=principal,
            deadline=self.deadline,
        )
        active, tagged = await asyncio.gather(
            b.call(
                b.deployments.GetActiveDeployment,
                deployments_pb2.GetActiveDeploymentRequest(prompt_id=prompt.id),
                principal=principal,
                deadline=self.deadline,
            ),
            self._tagged(principal, prompt.id, tag),
        )
        now = time.monotonic()
        expiry = {"fresh_until": now + self.ttl, "stale_until": now + self.ttl + self.stale}
        if active.HasField("deployment"):
            deployment = active.deployment
            ids = [v.version_id for v in deployment.variants]
            found = await b.call(
                b.registry.LookupVersions,
                registry_pb2.LookupVersionsRequest(version_ids=ids),
                principal=principal,
                deadline=self.deadline,
            )
            by_id = {v.id: v for v in found.versions}
            return Answer(
                project_id=project_id,
                prompt_id=prompt.id,
                seed=deployment.seed,
                weights=[v.weight for v in deployment.variants],
                bodies=[encode(by_id[i], deployment.id) for i in ids],
                **expiry,
            )
        if tagged is None:
            raise NotFound(
                f"prompt '{ref}' has no active deployment and no version tagged '{tag}'",
                details={"prompt": ref, "tag": tag},
            )
        return Answer(
            project_id=project_id,
            prompt_id=prompt.id,
            seed=None,
            weights=[],
            bodies=[encode(tagged, None)],
            **expiry,
        )

    async def _tagged(self, principal: Principal, prompt_id: str, tag: str) -> registry_pb2.Version | None:
        b = self.backends
        try:
            return await b.call(
                b.registry.GetVersion,
                registry_pb2.GetVersionRequest(prompt=prompt_id, tag=tag),
                principal=principal,
                deadline=self.deadline,
            )
        except NotFound:
            return None

    # -- invalidation -------------------------------------------------------------------------------

    def evict(self, *, project_id: uuid.UUID | None, prompt_id: str | None) -> None:
        now = time.monotonic()
        if project_id is None or prompt_id is None:
            self._cleared_at = now
            self._entries.clear()
            self._keys.clear()
            return
        if len(self._evicted_at) > MAX_ENTRIES:
            # Only fills younger than their deadline compare against these; older marks are moot.
            self._cleared_at = now
            self._evicted_at.clear()
        self._evicted_at[(project_id, prompt_id)] = now
        for key in self._keys.pop((project_id, prompt_id), ()):
            self._entries.pop(key, None)

    def on_event(self, data: bytes) -> None:
        try:
            event = orjson.loads(data)
            kind = str(event.get("type", ""))
            if not kind.startswith(EVICTING_PREFIXES):
                return
            payload = event.get("data") or {}
            project = event.get("projectId")
            prompt = payload.get("promptId")
            self.evict(
                project_id=uuid.UUID(project) if project else None,
                prompt_id=str(prompt) if prompt else None,
            )
        except (ValueError, TypeError, AttributeError):
            log.warning("unreadable event on the bus; clearing the resolve cache")
            self.evict(project_id=None, prompt_id=None)


async def listen_for_changes(get_client: Callable[[], Any], cache: ResolveCache) -> None:
    """Subscribe (plain NATS, no consumer state) once the gateway's NATS link is up; runs until cancelled."""
    # NatsLink exposes no event to wait on; it connects in the background.
    while (client := get_client()) is None:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    # Anything that changed before the subscription existed is covered by starting empty.
    cache.evict(project_id=None, prompt_id=None)

    async def handle(msg: Any) -> None:
        cache.on_event(msg.data)

    subscription = await client.subscribe(SUBJECT_PREFIX + ">", cb=handle)
    try:
        await asyncio.Event().wait()
    finally:
        with suppress(Exception):
            await subscription.unsubscribe()


def start_listener(get_client: Callable[[], Any], cache: ResolveCache) -> asyncio.Task[None]:
    return asyncio.create_task(listen_for_changes(get_client, cache))


# -- the ASGI fast path ----------------------------------------------------------------------------------

PATH_PREFIX = "/api/v1/prompts/"
PATH_SUFFIX = "/resolve"
TAG = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_READ = require("read")
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class _Route:
    """What the metrics middleware reads from `scope["route"]` for its label."""

    path: str = "/api/v1/prompts/{prompt}/resolve"


def untraced(scope: Scope) -> bool:
    """FastAPI's tracing skips the resolve route: a span per warm hit would cost more than the answer."""
    path: str = scope.get("path", "")
    return path.startswith(PATH_PREFIX) and path.endswith(PATH_SUFFIX)


class ResolveFastPath:
    """Answers warm `GET /api/v1/prompts/{prompt}/resolve` hits before FastAPI routing.

    The same key check (the route's own `require("read")` dependency) and the same cache as the
    route; anything else - a miss, a bad parameter, a failed key check - falls through to the
    FastAPI route, which fills the cache or renders the error. It sits inside GatewayMiddleware, so
    request ids and metrics apply as to any route.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(PATH_PREFIX) and path.endswith(PATH_SUFFIX):
                body = await self._warm(scope, path[len(PATH_PREFIX) : -len(PATH_SUFFIX)])
                if body is not None:
                    scope["route"] = _Route()
                    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    @staticmethod
    async def _warm(scope: Scope, prompt: str) -> bytes | None:
        if not prompt or "/" in prompt or len(prompt) > 100:
            return None
        session_id: str | None = None
        tag = "production"
        if scope["query_string"]:
            for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
                if name == "sessionId" and len(value) <= 256:
                    session_id = value or None
                elif name == "tag" and TAG.fullmatch(value):
                    tag = value
                else:
                    return None
        state = scope["app"].state
        cache: ResolveCache | None = getattr(state, "resolve_cache", None)
        if cache is None:
            return None
        try:
            principal = await _READ(Request(scope))
        except PvcError:
            return None
        return cache.warm(principal=principal, prompt=prompt, tag=tag, session_id=session_id)
