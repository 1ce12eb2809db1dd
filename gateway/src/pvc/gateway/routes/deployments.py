"""Deployments, the serving resolve route, and metrics: the deployments service's routes."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from pvc.gateway.auth import require
from pvc.gateway.clients import Services
from pvc.gateway.identity import Principal
from pvc.gateway.responses import ERRORS, JSON, Cursor, Limit, ok, page, page_request, uuid_or_404
from pvc.gateway.schemas import (
    TAG_PATTERN,
    CreateDeployment,
    DataList,
    DeploymentOut,
    DeploymentResolveOut,
    Ingested,
    MetricAggregateOut,
    Page,
    PromptResolveOut,
    ResultsOut,
    UpdateDeployment,
    VariantIn,
    VersionMetricsOut,
)
from pvc.gateway.serving import ResolveCache
from pvc.v1 import deployments_pb2, registry_pb2

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"], responses=ERRORS)
serving_router = APIRouter(prefix="/api/v1/prompts", tags=["deployments"], responses=ERRORS)
metrics_router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"], responses=ERRORS)

Reader = Annotated[Principal, Depends(require("read"))]
Deployer = Annotated[Principal, Depends(require("deployments:write"))]
Reporter = Annotated[Principal, Depends(require("metrics:write"))]
DeploymentId = Annotated[str, Path(alias="id", min_length=1, max_length=64, description="Deployment id")]
PromptRef = Annotated[str, Path(min_length=1, max_length=100, description="Prompt id or name")]
SessionId = Annotated[
    str | None, Query(alias="sessionId", max_length=256, description="Sticky key, e.g. a user or session id")
]
Since = Annotated[str | None, Query(alias="from", max_length=64, description="RFC 3339, inclusive")]
Until = Annotated[str | None, Query(alias="to", max_length=64, description="RFC 3339, exclusive")]


def deployment_json(d: deployments_pb2.Deployment) -> dict[str, Any]:
    return {
        "id": d.id,
        "projectId": d.project_id,
        "promptId": d.prompt_id,
        "name": d.name,
        "status": d.status,
        "variants": [
            {
                "versionId": v.version_id,
                "versionNumber": v.version_number,
                "weight": v.weight,
                "isControl": v.is_control,
            }
            for v in d.variants
        ],
        "guardrails": orjson.loads(d.guardrails_json or "[]"),
        "seed": d.seed,
        "pausedReason": orjson.loads(d.paused_reason_json) if d.paused_reason_json else None,
        "createdAt": d.created_at,
        "updatedAt": d.updated_at,
    }


def aggregate_json(a: deployments_pb2.MetricAggregate) -> dict[str, Any]:
    return {
        "name": a.name,
        "type": a.type,
        "unit": a.unit,
        "count": a.count,
        "sum": a.sum,
        "mean": a.mean,
        "min": a.min,
        "max": a.max,
        "p50": a.p50,
        "p95": a.p95,
        "p99": a.p99,
        "stddev": a.stddev,
    }


def variants_pb(variants: list[VariantIn]) -> list[deployments_pb2.Variant]:
    return [
        deployments_pb2.Variant(version_id=v.version_id, weight=v.weight, is_control=v.is_control)
        for v in variants
    ]


def _guardrails_json(body: CreateDeployment | UpdateDeployment) -> str:
    rules = [g.model_dump(by_alias=True, exclude_none=True) for g in body.guardrails or []]
    return orjson.dumps(rules).decode()


# -- deployments ------------------------------------------------------------------------------------


@router.post("", status_code=201, response_model=DeploymentOut, summary="Create a deployment (A/B test)")
async def create_deployment(body: CreateDeployment, principal: Deployer, services: Services) -> JSON:
    reply = await services.call(
        services.deployments.CreateDeployment,
        deployments_pb2.CreateDeploymentRequest(
            prompt_id=body.prompt_id,
            name=body.name,
            variants=variants_pb(body.variants),
            status=body.status,
            guardrails_json=_guardrails_json(body),
        ),
        principal=principal,
    )
    return ok(deployment_json(reply), 201)


@router.get("", response_model=Page[DeploymentOut], summary="List deployments, newest first")
async def list_deployments(
    principal: Reader,
    services: Services,
    limit: Limit = 20,
    cursor: Cursor = None,
    prompt_id: Annotated[str | None, Query(alias="promptId", max_length=64)] = None,
    status: Annotated[str | None, Query(pattern="^(active|paused|archived)$")] = None,
) -> JSON:
    reply = await services.call(
        services.deployments.ListDeployments,
        deployments_pb2.ListDeploymentsRequest(
            page=page_request(limit, cursor), prompt_id=prompt_id or "", status=status or ""
        ),
        principal=principal,
    )
    return page([deployment_json(d) for d in reply.deployments], reply.page, limit)


@router.get("/{id}", response_model=DeploymentOut, summary="One deployment")
async def get_deployment(deployment_id: DeploymentId, principal: Reader, services: Services) -> JSON:
    reply = await services.call(
        services.deployments.GetDeployment,
        deployments_pb2.GetDeploymentRequest(id=uuid_or_404(deployment_id, what="deployment")),
        principal=principal,
    )
    return ok(deployment_json(reply))


@router.put("/{id}", response_model=DeploymentOut, summary="Pause, resume or re-weight")
async def update_deployment(
    deployment_id: DeploymentId, body: UpdateDeployment, principal: Deployer, services: Services
) -> JSON:
    request = deployments_pb2.UpdateDeploymentRequest(id=uuid_or_404(deployment_id, what="deployment"))
    if body.status is not None:
        request.status = body.status
    if body.variants is not None:
        request.set_variants = True
        request.variants.extend(variants_pb(body.variants))
    if body.guardrails is not None:
        request.guardrails_json = _guardrails_json(body)
    reply = await services.call(services.deployments.UpdateDeployment, request, principal=principal)
    return ok(deployment_json(reply))


@router.delete("/{id}", response_model=DeploymentOut, summary="Archive (kept for its results)")
async def archive_deployment(deployment_id: DeploymentId, principal: Deployer, services: Services) -> JSON:
    reply = await services.call(
        services.deployments.ArchiveDeployment,
        deployments_pb2.GetDeploymentRequest(id=uuid_or_404(deployment_id, what="deployment")),
        principal=principal,
    )
    return ok(deployment_json(reply))


@router.get(
    "/{id}/resolve",
    response_model=DeploymentResolveOut,
    summary="The variant of this deployment for a session (sticky)",
)
async def resolve_deployment(
    deployment_id: DeploymentId, principal: Reader, services: Services, session_id: SessionId = None
) -> JSON:
    reply = await services.call(
        services.deployments.Resolve,
        deployments_pb2.ResolveRequest(
            id=uuid_or_404(deployment_id, what="deployment"), session_id=session_id or ""
        ),
        principal=principal,
    )
    return ok(
        {
            "deploymentId": reply.deployment_id,
            "versionId": reply.version_id,
            "versionNumber": reply.version_number,
            "sessionId": session_id,
            "sticky": reply.sticky,
        }
    )


@router.get(
    "/{id}/results",
    response_model=ResultsOut,
    summary="Per-variant metrics and Welch's t-test against the control",
)
async def results(
    deployment_id: DeploymentId,
    principal: Reader,
    services: Services,
    since: Since = None,
    until: Until = None,
) -> Response:
    reply = await services.call(
        services.deployments.GetResults,
        deployments_pb2.GetResultsRequest(
            id=uuid_or_404(deployment_id, what="deployment"), start=since or "", end=until or ""
        ),
        principal=principal,
    )
    return Response(reply.results_json, media_type="application/json")


# -- the serving hot path -----------------------------------------------------------------------------


@serving_router.get(
    "/{prompt}/resolve",
    response_model=PromptResolveOut,
    summary="What to serve: the active deployment's variant for this session, else the tagged version",
)
async def resolve_prompt(
    request: Request,
    prompt: PromptRef,
    principal: Reader,
    session_id: SessionId = None,
    tag: Annotated[str, Query(pattern=TAG_PATTERN)] = "production",
) -> Response:
    cache: ResolveCache = request.app.state.resolve_cache
    body = await cache.resolve(principal=principal, prompt=prompt, tag=tag, session_id=session_id)
    # Pre-encoded bytes: no response-model validation or JSON encoding on the hot path.
    return Response(body, media_type="application/json")


# -- metrics ------------------------------------------------------------------------------------------


@metrics_router.post(
    "/ingest",
    status_code=202,
    response_model=Ingested,
    summary="Report metric points (up to 10,000)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MetricsIngest"}}},
        }
    },
)
async def ingest(request: Request, principal: Reporter, services: Services) -> JSON:
    # The body is not parsed here: the deployments service validates a batch once, in one pass, and
    # names the first bad index (docs/deployments.md). The bytes travel on as the client sent them.
    reply = await services.call(
        services.deployments.IngestMetrics,
        deployments_pb2.IngestMetricsRequest(body=await request.body()),
        principal=principal,
    )
    return ok({"ingested": reply.ingested}, 202)


@metrics_router.get(
    "/versions/{versionId}",
    response_model=DataList[MetricAggregateOut],
    summary="Aggregates of one version, one row per metric name",
)
async def version_metrics(
    version_id: Annotated[str, Path(alias="versionId", min_length=1, max_length=64)],
    principal: Reader,
    services: Services,
    since: Since = None,
    until: Until = None,
    type: Annotated[str | None, Query(pattern="^(cost|latency|quality|custom)$")] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
) -> JSON:
    reply = await services.call(
        services.deployments.VersionMetrics,
        deployments_pb2.VersionMetricsRequest(
            version_id=uuid_or_404(version_id, what="version"),
            start=since or "",
            end=until or "",
            type=type or "",
            name=name or "",
        ),
        principal=principal,
    )
    return ok({"data": [aggregate_json(a) for a in reply.data]})


@metrics_router.get(
    "/prompts/{prompt}",
    response_model=DataList[VersionMetricsOut],
    summary="Aggregates of every version of a prompt, highest version first",
)
async def prompt_metrics(
    prompt: PromptRef, principal: Reader, services: Services, since: Since = None, until: Until = None
) -> JSON:
    found = await services.call(
        services.registry.GetPrompt, registry_pb2.GetPromptRequest(prompt=prompt), principal=principal
    )
    reply = await services.call(
        services.deployments.PromptMetrics,
        deployments_pb2.PromptMetricsRequest(prompt_id=found.id, start=since or "", end=until or ""),
        principal=principal,
    )
    return ok(
        {
            "data": [
                {
                    "versionId": g.version_id,
                    "versionNumber": g.version_number,
                    "metrics": [aggregate_json(a) for a in g.metrics],
                }
                for g in reply.data
            ]
        }
    )
