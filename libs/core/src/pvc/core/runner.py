"""The entry point every gRPC service shares: `python -m pvc.<name> [migrate]`."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from grpc_health.v1._async import HealthServicer

from pvc.core.db import Database, create_engine
from pvc.core.grpc_server import Registrar, create_server, serve_until_signalled
from pvc.core.logging import configure_logging
from pvc.core.metrics import serve_metrics
from pvc.core.migrations import upgrade
from pvc.core.relay import OutboxRelay
from pvc.core.settings import ServiceSettings
from pvc.core.telemetry import configure_tracing


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    schema: str
    migrations: Path
    settings: type[ServiceSettings]
    # Fully qualified gRPC service names, for health and reflection.
    service_names: Sequence[str]
    # Builds (registrar, servicer) pairs from the process's settings and database.
    servicers: Callable[[ServiceSettings, Database], Sequence[tuple[Registrar, object]]]
    # The service's outbox table, published to JetStream by a relay running beside the server.
    outbox: sa.Table
    # Long-running loops beside the server (e.g. timeout sweepers), cancelled on shutdown.
    background: Callable[[ServiceSettings, Database], Sequence[Coroutine[Any, Any, None]]] | None = None


async def create_service_server(
    spec: ServiceSpec, settings: ServiceSettings, db: Database
) -> tuple[grpc.aio.Server, int, HealthServicer]:
    """Factory used by the entry point and by tests (bind "127.0.0.1:0" for a free port)."""
    return await create_server(
        service=spec.name,
        address=settings.grpc_addr,
        internal_token=settings.internal_token,
        servicers=spec.servicers(settings, db),
        service_names=spec.service_names,
    )


async def _serve(spec: ServiceSpec, settings: ServiceSettings) -> None:
    db = Database(create_engine(settings.database_url, pool_size=settings.db_pool_size))
    server, port, health = await create_service_server(spec, settings, db)
    serve_metrics(settings.metrics_port)
    logging.getLogger(f"pvc.{spec.name}").info("serving gRPC", extra={"port": port})
    relay = OutboxRelay(
        db=db,
        table=spec.outbox,
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        service=spec.name,
    )
    relay_task = asyncio.create_task(relay.run())
    tasks = [relay_task]
    if spec.background is not None:
        tasks.extend(asyncio.create_task(loop) for loop in spec.background(settings, db))
    try:
        await serve_until_signalled(
            server=server,
            health=health,
            service_names=spec.service_names,
            grace=settings.shutdown_grace_seconds,
        )
    finally:
        for task in tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        await db.dispose()


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (Linux, macOS): the same asyncio API, a faster loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def main(spec: ServiceSpec, argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    settings = spec.settings()
    configure_logging(component=spec.name, level=settings.log_level)
    if args[:1] == ["migrate"]:
        upgrade(database_url=settings.database_url, schema=spec.schema, script_location=spec.migrations)
        return
    if args:
        raise SystemExit(f"usage: python -m pvc.{spec.name} [migrate]")
    configure_tracing(service_name=spec.name)
    run_loop(_serve(spec, settings))
