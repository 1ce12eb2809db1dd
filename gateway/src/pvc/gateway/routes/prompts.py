"""Prompts, versions, diff, render and tags: the registry's routes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from pvc.core.errors import NotFound, ValidationFailed
from pvc.gateway.auth import require
from pvc.gateway.clients import Services
from pvc.gateway.identity import Principal
from pvc.gateway.responses import ERRORS, JSON, Cursor, Limit, ok, page, page_request
from pvc.gateway.schemas import (
    CreatePrompt,
    CreateVersion,
    DataList,
    DiffOut,
    Page,
    PromptOut,
    RenderOut,
    RenderRequest,
    SetTag,
    TagMoveOut,
    TagOut,
    UpdatePrompt,
    VersionOut,
)
from pvc.v1 import registry_pb2

router = APIRouter(prefix="/api/v1/prompts", tags=["prompts"], responses=ERRORS)

PromptRef = Annotated[str, Path(min_length=1, max_length=100, description="Prompt id or name")]
VersionParam = Annotated[str, Path(min_length=1, max_length=64, description="Version id or number")]
TagName = Annotated[str, Path(min_length=1, max_length=32, description="Tag name")]
Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("prompts:write"))]


Registry = Services


# -- converters (proto -> REST JSON) ---------------------------------------------------------------


def prompt_json(p: registry_pb2.Prompt) -> dict[str, Any]:
    return {
        "id": p.id,
        "projectId": p.project_id,
        "name": p.name,
        "description": p.description,
        "metadata": orjson.loads(p.metadata_json or "{}"),
        "archived": p.archived,
        "latestVersion": p.latest_version or None,
        "tags": dict(sorted(p.tags.items())),
        "createdAt": p.created_at,
        "updatedAt": p.updated_at,
    }


def version_json(v: registry_pb2.Version) -> dict[str, Any]:
    return {
        "id": v.id,
        "promptId": v.prompt_id,
        "number": v.number,
        "template": v.template,
        "variables": orjson.loads(v.variables_json or "[]"),
        "config": orjson.loads(v.config_json or "{}"),
        "checksum": v.checksum,
        "message": v.message,
        "author": v.author,
        "metadata": orjson.loads(v.metadata_json or "{}"),
        "createdAt": v.created_at,
    }


def tag_json(t: registry_pb2.Tag) -> dict[str, Any]:
    return {
        "name": t.name,
        "versionId": t.version_id,
        "versionNumber": t.version_number,
        "updatedAt": t.updated_at,
    }


def version_ref(value: str | int, *, field: str | None = None) -> registry_pb2.VersionRef:
    """A version number or id. Anything else names no version: 404 in a path, 400 in a body or query."""
    if isinstance(value, int) or (
        isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10
    ):
        number = int(value)
        if number >= 1:
            return registry_pb2.VersionRef(number=number)
    elif isinstance(value, str):
        try:
            return registry_pb2.VersionRef(id=str(uuid.UUID(value)))
        except ValueError:
            pass
    if field:
        raise ValidationFailed(
            f"{field} must be a version number or id", details={"fields": {field: "invalid"}}
        )
    raise NotFound(f"version '{value}' not found")


def _dump(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- prompts ----------------------------------------------------------------------------------------


@router.get("", response_model=Page[PromptOut], summary="List prompts, newest first")
async def list_prompts(
    principal: Reader,
    registry: Registry,
    limit: Limit = 20,
    cursor: Cursor = None,
    q: Annotated[str | None, Query(max_length=100, description="Name contains")] = None,
    archived: Annotated[bool, Query(description="Include archived prompts")] = False,
) -> JSON:
    reply = await registry.call(
        registry.registry.ListPrompts,
        registry_pb2.ListPromptsRequest(
            page=page_request(limit, cursor), query=q or "", include_archived=archived
        ),
        principal=principal,
    )
    return page([prompt_json(p) for p in reply.prompts], reply.page, limit)


@router.post("", status_code=201, response_model=PromptOut, summary="Create a prompt (and version 1)")
async def create_prompt(body: CreatePrompt, principal: Writer, registry: Registry) -> JSON:
    request = registry_pb2.CreatePromptRequest(
        name=body.name,
        description=body.description,
        metadata_json=_dump(body.metadata),
        variables_json=_dump(body.variables),
        config_json=_dump(body.config),
    )
    if body.template is not None:
        request.template = body.template
    reply = await registry.call(registry.registry.CreatePrompt, request, principal=principal)
    return ok(prompt_json(reply.prompt), 201)


@router.get("/{prompt}", response_model=PromptOut, summary="Get a prompt by id or name")
async def get_prompt(prompt: PromptRef, principal: Reader, registry: Registry) -> JSON:
    reply = await registry.call(
        registry.registry.GetPrompt, registry_pb2.GetPromptRequest(prompt=prompt), principal=principal
    )
    return ok(prompt_json(reply))


@router.put("/{prompt}", response_model=PromptOut, summary="Update description or metadata")
async def update_prompt(prompt: PromptRef, body: UpdatePrompt, principal: Writer, registry: Registry) -> JSON:
    request = registry_pb2.UpdatePromptRequest(prompt=prompt)
    if body.description is not None:
        request.description = body.description
    if body.metadata is not None:
        request.metadata_json = _dump(body.metadata)
    return ok(prompt_json(await registry.call(registry.registry.UpdatePrompt, request, principal=principal)))


@router.delete(
    "/{prompt}",
    response_model=PromptOut,
    summary="Archive a prompt (soft delete)",
    openapi_extra={"x-audit-action": "prompt.archive"},
)
async def archive_prompt(prompt: PromptRef, principal: Writer, registry: Registry) -> JSON:
    reply = await registry.call(
        registry.registry.ArchivePrompt, registry_pb2.ArchivePromptRequest(prompt=prompt), principal=principal
    )
    return ok(prompt_json(reply))


# -- versions ---------------------------------------------------------------------------------------


@router.get("/{prompt}/versions", response_model=Page[VersionOut], summary="List versions, highest first")
async def list_versions(
    prompt: PromptRef, principal: Reader, registry: Registry, limit: Limit = 20, cursor: Cursor = None
) -> JSON:
    reply = await registry.call(
        registry.registry.ListVersions,
        registry_pb2.ListVersionsRequest(prompt=prompt, page=page_request(limit, cursor)),
        principal=principal,
    )
    return page([version_json(v) for v in reply.versions], reply.page, limit)


@router.post(
    "/{prompt}/versions",
    status_code=201,
    response_model=VersionOut,
    summary="Create a version (200 with the latest version when the content is unchanged)",
    responses={
        200: {"model": VersionOut, "description": "Same content as the latest version; nothing created"}
    },
)
async def create_version(
    prompt: PromptRef, body: CreateVersion, principal: Writer, registry: Registry
) -> JSON:
    reply = await registry.call(
        registry.registry.CreateVersion,
        registry_pb2.CreateVersionRequest(
            prompt=prompt,
            template=body.template,
            variables_json=_dump(body.variables),
            config_json=_dump(body.config),
            message=body.message,
            metadata_json=_dump(body.metadata),
        ),
        principal=principal,
    )
    return ok(version_json(reply.version), 201 if reply.created else 200)


@router.get(
    "/{prompt}/versions/{version}", response_model=VersionOut, summary="Get a version by id or number"
)
async def get_version(
    prompt: PromptRef, version: VersionParam, principal: Reader, registry: Registry
) -> JSON:
    reply = await registry.call(
        registry.registry.GetVersion,
        registry_pb2.GetVersionRequest(prompt=prompt, version=version_ref(version)),
        principal=principal,
    )
    return ok(version_json(reply))


@router.get("/{prompt}/production", response_model=VersionOut, summary="The version tagged production")
async def get_production(prompt: PromptRef, principal: Reader, registry: Registry) -> JSON:
    reply = await registry.call(
        registry.registry.GetVersion,
        registry_pb2.GetVersionRequest(prompt=prompt, tag="production"),
        principal=principal,
    )
    return ok(version_json(reply))


@router.get(
    "/{prompt}/diff", response_model=DiffOut, summary="Line diff and semantic impact between versions"
)
async def diff(
    prompt: PromptRef,
    principal: Reader,
    registry: Registry,
    from_version: Annotated[str | None, Query(alias="fromVersion", max_length=64)] = None,
    to_version: Annotated[str | None, Query(alias="toVersion", max_length=64)] = None,
) -> JSON:
    request = registry_pb2.DiffVersionsRequest(prompt=prompt)
    if from_version is not None:
        request.from_version.CopyFrom(version_ref(from_version, field="fromVersion"))
    if to_version is not None:
        request.to_version.CopyFrom(version_ref(to_version, field="toVersion"))
    reply = await registry.call(registry.registry.DiffVersions, request, principal=principal)
    return ok(
        {"fromVersion": reply.from_version, "toVersion": reply.to_version, **orjson.loads(reply.diff_json)}
    )


@router.post("/{prompt}/render", response_model=RenderOut, summary="Render a version with variables")
async def render(prompt: PromptRef, body: RenderRequest, principal: Reader, registry: Registry) -> JSON:
    request = registry_pb2.RenderRequest(
        prompt=prompt, variables_json=_dump(body.variables), tag=body.tag or ""
    )
    if body.version is not None:
        request.version.CopyFrom(version_ref(body.version, field="version"))
    reply = await registry.call(registry.registry.Render, request, principal=principal)
    return ok(
        {
            "version": reply.version.number,
            "versionId": reply.version.id,
            "rendered": reply.rendered,
            "variablesUsed": list(reply.variables_used),
            "missingVariables": list(reply.missing_variables),
        }
    )


# -- tags -------------------------------------------------------------------------------------------


@router.get("/{prompt}/tags", response_model=DataList[TagOut], summary="Tags of a prompt")
async def list_tags(prompt: PromptRef, principal: Reader, registry: Registry) -> JSON:
    reply = await registry.call(
        registry.registry.ListTags, registry_pb2.ListTagsRequest(prompt=prompt), principal=principal
    )
    return ok({"data": [tag_json(t) for t in reply.tags]})


@router.get("/{prompt}/tags/{name}", response_model=TagOut, summary="One tag")
async def get_tag(prompt: PromptRef, name: TagName, principal: Reader, registry: Registry) -> JSON:
    reply = await registry.call(
        registry.registry.GetTag, registry_pb2.GetTagRequest(prompt=prompt, name=name), principal=principal
    )
    return ok(tag_json(reply))


@router.post(
    "/{prompt}/tags/{name}", response_model=TagOut, summary="Point a tag at a version (not production)"
)
async def set_tag(
    prompt: PromptRef, name: TagName, body: SetTag, principal: Writer, registry: Registry
) -> JSON:
    if (body.version_id is None) == (body.version is None):
        raise ValidationFailed(
            "give exactly one of versionId or version",
            details={"fields": {"versionId": "exactly one required"}},
        )
    ref = version_ref(body.version if body.version is not None else str(body.version_id), field="versionId")
    reply = await registry.call(
        registry.registry.SetTag,
        registry_pb2.SetTagRequest(prompt=prompt, name=name, version=ref),
        principal=principal,
    )
    return ok(tag_json(reply))


@router.delete("/{prompt}/tags/{name}", status_code=204, summary="Remove a tag (not production)")
async def delete_tag(prompt: PromptRef, name: TagName, principal: Writer, registry: Registry) -> Response:
    await registry.call(
        registry.registry.DeleteTag,
        registry_pb2.DeleteTagRequest(prompt=prompt, name=name),
        principal=principal,
    )
    return Response(status_code=204)


@router.get(
    "/{prompt}/tags/{name}/history",
    response_model=Page[TagMoveOut],
    summary="Every move of a tag, newest first",
)
async def tag_history(
    prompt: PromptRef,
    name: TagName,
    principal: Reader,
    registry: Registry,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> JSON:
    reply = await registry.call(
        registry.registry.ListTagHistory,
        registry_pb2.ListTagHistoryRequest(prompt=prompt, name=name, page=page_request(limit, cursor)),
        principal=principal,
    )
    moves = [
        {
            "kind": m.kind,
            "versionNumber": m.version_number or None,
            "previousVersionNumber": m.previous_version_number or None,
            "actor": m.actor,
            "at": m.at,
        }
        for m in reply.moves
    ]
    return page(moves, reply.page, limit)
