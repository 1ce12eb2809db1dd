"""Identity routes: API keys, projects and the audit log (all served by the gateway itself)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, Field

from pvc.core.db import Database
from pvc.core.errors import ValidationFailed
from pvc.gateway import identity
from pvc.gateway.audit import audit_json, list_audit
from pvc.gateway.auth import require
from pvc.gateway.identity import SCOPES, Principal
from pvc.gateway.responses import ERRORS, JSON, Cursor, Limit, ok
from pvc.gateway.schemas import PROMPT_NAME_PATTERN, Body, Out, Page

router = APIRouter(prefix="/api/v1", responses=ERRORS)

Scope = Literal[
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
]
assert set(Scope.__args__) == set(SCOPES)  # type: ignore[attr-defined]

KeysAdmin = Annotated[Principal, Depends(require("keys:admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]
KeyId = Annotated[uuid.UUID, Path(description="API key id")]


async def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


Db = Annotated[Database, Depends(database)]


# -- bodies -----------------------------------------------------------------------------------------


class CreateKey(Body):
    name: str = Field(min_length=1, max_length=100, examples=["ci-pipeline"])
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))
    # JSON has no datetime or UUID type: these two parse their strings (strict=False).
    expires_at: AwareDatetime | None = Field(
        default=None, strict=False, description="RFC 3339 with a time zone"
    )
    project_id: uuid.UUID | None = Field(
        default=None, strict=False, description="Another project (admin keys only)"
    )
    rate_limit_per_second: float | None = Field(
        default=None, ge=0, le=1_000_000, description="Own limit, 0 = unlimited (admin keys only)"
    )


class CreateProject(Body):
    name: str = Field(pattern=PROMPT_NAME_PATTERN, examples=["payments-team"])


class KeyOut(Out):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    project_id: str
    expires_at: str | None
    rate_limit_per_second: float | None
    last_used_at: str | None
    revoked_at: str | None
    created_by: str | None
    created_at: str


class CreatedKeyOut(KeyOut):
    key: str = Field(description="The secret; shown only in this response")


class ProjectOut(Out):
    id: str
    name: str
    created_at: str


class AuditOut(Out):
    id: str
    at: str
    actor_id: str | None
    actor_name: str | None
    action: str
    resource_type: str
    resource_id: str | None
    before: Any
    after: Any
    outcome: Literal["success", "failure", "denied"]
    request_id: str | None
    ip: str | None


def _page(items: list[Any], next_cursor: str | None, limit: int) -> JSON:
    return ok({"data": items, "meta": {"limit": limit, "nextCursor": next_cursor}})


# -- API keys ---------------------------------------------------------------------------------------


@router.post(
    "/api-keys",
    status_code=201,
    response_model=CreatedKeyOut,
    tags=["api-keys"],
    summary="Mint an API key (the secret is shown only here)",
)
async def create_key(body: CreateKey, principal: KeysAdmin, db: Db, request: Request) -> JSON:
    key, secret = await identity.create_key(
        db=db,
        creator=principal,
        name=body.name,
        scopes=list(body.scopes),
        project_id=body.project_id,
        expires_at=body.expires_at,
        rate_limit_per_second=body.rate_limit_per_second,
        pepper=request.app.state.settings.api_key_pepper,
    )
    return ok({**identity.key_json(key), "key": secret}, 201)


@router.get("/api-keys", response_model=Page[KeyOut], tags=["api-keys"], summary="Keys of this project")
async def list_keys(principal: KeysAdmin, db: Db, limit: Limit = 20, cursor: Cursor = None) -> JSON:
    keys, next_cursor = await identity.list_keys(
        db=db, project_id=principal.project_id, limit=limit, cursor=cursor
    )
    return _page([identity.key_json(k) for k in keys], next_cursor, limit)


@router.get("/api-keys/{id}", response_model=KeyOut, tags=["api-keys"], summary="One key (no secret)")
async def get_key(id: KeyId, principal: KeysAdmin, db: Db) -> JSON:
    return ok(identity.key_json(await identity.get_key(db=db, project_id=principal.project_id, key_id=id)))


@router.delete(
    "/api-keys/{id}",
    status_code=204,
    tags=["api-keys"],
    summary="Revoke a key (every gateway replica refuses it within 1 s)",
    openapi_extra={"x-audit-action": "api_key.revoke"},
)
async def revoke_key(id: KeyId, principal: KeysAdmin, db: Db, request: Request) -> Response:
    await identity.revoke_key(db=db, revoker=principal, key_id=id)
    # This replica forgets it at once; the others when the api_key.revoked event reaches them.
    request.app.state.keys.forget(id)
    return Response(status_code=204)


# -- projects ---------------------------------------------------------------------------------------


@router.post(
    "/projects", status_code=201, response_model=ProjectOut, tags=["projects"], summary="Create a project"
)
async def create_project(body: CreateProject, principal: Admin, db: Db) -> JSON:
    return ok(identity.project_json(await identity.create_project(db=db, name=body.name)), 201)


@router.get("/projects", response_model=Page[ProjectOut], tags=["projects"], summary="Every project")
async def list_projects(principal: Admin, db: Db, limit: Limit = 20, cursor: Cursor = None) -> JSON:
    projects, next_cursor = await identity.list_projects(db=db, limit=limit, cursor=cursor)
    return _page([identity.project_json(p) for p in projects], next_cursor, limit)


# -- audit log --------------------------------------------------------------------------------------

Filter = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get(
    "/audit-logs",
    response_model=Page[AuditOut],
    tags=["audit"],
    summary="The append-only audit log of this project, newest first",
)
async def list_audit_logs(
    principal: KeysAdmin,
    db: Db,
    limit: Limit = 20,
    cursor: Cursor = None,
    resource_type: Annotated[str | None, Query(alias="resourceType", min_length=1, max_length=100)] = None,
    resource_id: Annotated[str | None, Query(alias="resourceId", min_length=1, max_length=300)] = None,
    action: Filter = None,
    actor_id: Annotated[str | None, Query(alias="actorId", min_length=1, max_length=100)] = None,
    outcome: Literal["success", "failure", "denied"] | None = None,
    request_id: Annotated[str | None, Query(alias="requestId", pattern=r"^[\w-]{1,128}$")] = None,
    since: Annotated[AwareDatetime | None, Query(alias="from", description="RFC 3339, inclusive")] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to", description="RFC 3339, exclusive")] = None,
) -> JSON:
    if since is not None and until is not None and since > until:
        raise ValidationFailed("from must not be after to", details={"fields": {"from": "after to"}})
    rows, next_cursor = await list_audit(
        db=db,
        project_id=principal.project_id,
        # Failed authentications belong to no project; only `admin` keys see them.
        include_unscoped="admin" in principal.scopes,
        filters={
            "resource_type": resource_type,
            "resource_id": resource_id,
            "action": action,
            "actor_id": actor_id,
            "outcome": outcome,
            "request_id": request_id,
        },
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return _page([audit_json(r) for r in rows], next_cursor, limit)
