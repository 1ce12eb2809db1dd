"""`create_app()`: the gateway's factory, used by Granian (`--factory`) and by tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import nats
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from nats.aio.client import Client as NATS
from pydantic.json_schema import models_json_schema

from pvc.core.db import Database, create_engine
from pvc.core.logging import configure_logging
from pvc.core.relay import OutboxRelay
from pvc.core.ssrf import parse_networks
from pvc.core.telemetry import configure_tracing
from pvc.gateway.audit import AuditWriter
from pvc.gateway.clients import Backends
from pvc.gateway.errors import install_error_handlers
from pvc.gateway.guard import IdentityMiddleware
from pvc.gateway.identity import KeyStore, ensure_bootstrap
from pvc.gateway.middleware import GatewayMiddleware
from pvc.gateway.models import outbox
from pvc.gateway.ratelimit import RateLimiter
from pvc.gateway.responses import JSON
from pvc.gateway.routes import deployments, evals, keys, promotions, prompts, system, webhooks
from pvc.gateway.schemas import MetricsIngest
from pvc.gateway.serving import ResolveCache, ResolveFastPath, start_listener, untraced
from pvc.gateway.settings import GatewaySettings

log = logging.getLogger("pvc.gateway")

# Every router of the public API; each route declares its scope through `require(...)`.
API_ROUTERS = (
    prompts.router,
    promotions.router,
    evals.router,
    keys.router,
    webhooks.router,
    deployments.serving_router,
    deployments.router,
    deployments.metrics_router,
)


class NatsLink:
    """The gateway's NATS connection, (re)established in the background so start-up never blocks on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: NATS | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        while self.client is None:
            try:
                self.client = await nats.connect(
                    self.url,
                    name="pvc-gateway",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    allow_reconnect=True,
                )
            except Exception as exc:  # nats raises several unrelated types while the server is down
                log.warning("NATS not reachable yet: %s", exc)
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None:
            with suppress(Exception):
                await self.client.close()


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    configure_logging(component="gateway", level=settings.log_level)
    configure_tracing(service_name="gateway")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(create_engine(settings.database_url, pool_size=settings.db_pool_size))
        if settings.bootstrap_api_key:
            await ensure_bootstrap(db=db, pepper=settings.api_key_pepper, key=settings.bootstrap_api_key)
        app.state.db = db
        app.state.keys = KeyStore(
            db=db,
            pepper=settings.api_key_pepper,
            cache_seconds=settings.key_cache_seconds,
            cache_seconds_with_events=settings.key_cache_seconds_with_events,
        )
        app.state.audit = AuditWriter(db=db, wait_seconds=settings.audit_wait_seconds)
        app.state.audit.start()
        app.state.backends = Backends(settings)
        app.state.nats = NatsLink(settings.nats_url)
        app.state.nats.start()
        identity_tasks = [
            asyncio.create_task(app.state.keys.follow_events(app.state.nats)),
            asyncio.create_task(app.state.keys.run_last_used_writer()),
        ]
        app.state.resolve_cache = ResolveCache(
            backends=app.state.backends,
            ttl=settings.resolve_cache_seconds,
            stale=settings.resolve_stale_seconds,
            deadline=settings.resolve_deadline_seconds,
        )
        cache_listener = start_listener(lambda: app.state.nats.client, app.state.resolve_cache)
        relay = OutboxRelay(
            db=db,
            table=outbox,
            database_url=settings.database_url,
            nats_url=settings.nats_url,
            service="gateway",
        )
        relay_task = asyncio.create_task(relay.run())
        try:
            yield
        finally:
            for task in identity_tasks:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await app.state.audit.close()
            for task in (relay_task, cache_listener):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await app.state.nats.close()
            await app.state.backends.close()
            await db.dispose()

    app = FastAPI(
        title="pvc — Prompt Version Control",
        version="1.0.0",
        description="Versioned prompts with eval-gated promotion, A/B serving, metrics and signed webhooks.",
        default_response_class=JSON,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry={"exclude": untraced},
    )
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(
        per_second=settings.rate_limit_per_second, burst=settings.rate_limit_burst
    )
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
    install_error_handlers(app)
    app.include_router(system.router)
    for router in API_ROUTERS:
        app.include_router(router)
    system.mount_docs_assets(app)
    # Innermost of the three: warm resolve hits skip routing, after the key check and rate limits.
    app.add_middleware(ResolveFastPath)
    # Inside GatewayMiddleware (added last = outermost), so the request id is already set.
    app.add_middleware(IdentityMiddleware, routes=[r for router in API_ROUTERS for r in router.routes])
    app.add_middleware(
        GatewayMiddleware,
        max_body=settings.max_body_bytes,
        large_body_paths={"/api/v1/metrics/ingest": settings.max_ingest_body_bytes},
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


# Request bodies a route documents but forwards unparsed; their schemas go in the spec by name.
UNPARSED_BODIES = (MetricsIngest,)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "API key (pvc_...)",
    }
    _, documented = models_json_schema(
        [(model, "validation") for model in UNPARSED_BODIES], ref_template="#/components/schemas/{model}"
    )
    schema["components"].setdefault("schemas", {}).update(documented["$defs"])
    # Record each route's required scope in the spec, so clients (and the scope test) can read it.
    for route in (r for router in API_ROUTERS for r in router.routes):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        scope = next(
            (getattr(d.call, "required_scope", None) for d in route.dependant.dependencies if d.call), None
        )
        for method in route.methods or ():
            operation = schema["paths"][route.path_format][method.lower()]
            if scope:
                operation["x-required-scope"] = scope
                operation["security"] = [{"bearer": []}]
    app.openapi_schema = schema
    return schema
