"""Infrastructure routes: liveness, readiness, metrics, API docs. No authentication."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import swagger_ui_bundle
import yaml
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pvc.gateway.responses import JSON

router = APIRouter(include_in_schema=False)
DOCS = "/api/v1/docs"


@router.get("/health")
async def health() -> JSON:
    return JSON({"status": "ok", "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")})


@router.get("/ready")
async def ready(request: Request) -> JSON:
    state = request.app.state
    names = list(state.backends.channels)
    results = await asyncio.gather(
        _database_ok(state.db.engine), _nats_ok(state.nats), *(state.backends.health(name) for name in names)
    )
    checks: dict[str, Any] = {"gateway": "ok"}
    for name, healthy in zip(["database", "nats", *names], results, strict=True):
        checks[name] = "ok" if healthy else "unavailable"
    all_ok = all(value == "ok" for value in checks.values())
    return JSON(
        {"status": "ready" if all_ok else "not_ready", "checks": checks}, status_code=200 if all_ok else 503
    )


async def _database_ok(engine: Any) -> bool:
    try:
        async with asyncio.timeout(1.0), engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
    except Exception:
        return False
    return True


async def _nats_ok(nats: Any) -> bool:
    return bool(nats.connected)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get(DOCS)
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=f"{DOCS}/openapi.json",
        title="pvc API",
        swagger_js_url=f"{DOCS}/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS}/assets/swagger-ui.css",
        swagger_favicon_url=f"{DOCS}/assets/favicon-32x32.png",
    )


@router.get(f"{DOCS}/openapi.json")
async def openapi_json(request: Request) -> JSON:
    return JSON(request.app.openapi())


@router.get(f"{DOCS}/openapi.yaml")
async def openapi_yaml(request: Request) -> Response:
    return Response(yaml.safe_dump(request.app.openapi(), sort_keys=False), media_type="application/yaml")


def mount_docs_assets(app: FastAPI) -> None:
    assets = Path(swagger_ui_bundle.swagger_ui_path)
    app.mount(f"{DOCS}/assets", StaticFiles(directory=assets), name="swagger-assets")
