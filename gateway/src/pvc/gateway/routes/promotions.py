"""Production moves (promote, override, rollback), their trail, and the prompt's gate policy."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends

from pvc.gateway.auth import require
from pvc.gateway.clients import Backends, Services
from pvc.gateway.identity import Principal
from pvc.gateway.responses import ERRORS, JSON, Cursor, Limit, ok, page, page_request
from pvc.gateway.routes.prompts import PromptRef
from pvc.gateway.schemas import (
    GatePolicyBody,
    GatePolicyOut,
    OverrideBody,
    OverrideOut,
    Page,
    PromoteBody,
    PromoteOut,
    PromotionOut,
    RollbackBody,
    RollbackOut,
)
from pvc.v1 import evals_pb2, registry_pb2

router = APIRouter(prefix="/api/v1/prompts", tags=["promotions"], responses=ERRORS)

Reader = Annotated[Principal, Depends(require("read"))]
Promoter = Annotated[Principal, Depends(require("promote"))]
Overrider = Annotated[Principal, Depends(require("promote:override"))]


def _gate(text: str) -> Any:
    return orjson.loads(text) if text else None


@router.post(
    "/{prompt}/promote",
    response_model=PromoteOut,
    summary="Promote staging (or versionId) to production if the gate passes",
)
async def promote(
    prompt: PromptRef,
    principal: Promoter,
    services: Services,
    body: Annotated[PromoteBody | None, Body()] = None,
) -> JSON:
    body = body or PromoteBody()
    reply = await services.call(
        services.registry.Promote,
        registry_pb2.PromoteRequest(prompt=prompt, version_id=body.version_id or "", reason=body.reason),
        principal=principal,
    )
    return ok(
        {
            "promoted": True,
            "version": reply.version,
            "versionId": reply.version_id,
            "previousVersion": reply.previous_version or None,
            "gate": _gate(reply.gate_json),
        }
    )


@router.post(
    "/{prompt}/promote/override",
    response_model=OverrideOut,
    summary="Move production without a passing gate; the reason is required and recorded",
)
async def override(prompt: PromptRef, body: OverrideBody, principal: Overrider, services: Services) -> JSON:
    reply = await services.call(
        services.registry.OverridePromotion,
        registry_pb2.OverridePromotionRequest(prompt=prompt, version_id=body.version_id, reason=body.reason),
        principal=principal,
    )
    return ok(
        {
            "promoted": True,
            "overridden": True,
            "version": reply.version,
            "versionId": reply.version_id,
            "previousVersion": reply.previous_version or None,
            "reason": reply.reason,
        }
    )


@router.post(
    "/{prompt}/rollback",
    response_model=RollbackOut,
    summary="Return production to the version that held it before the current one",
)
async def rollback(
    prompt: PromptRef,
    principal: Promoter,
    services: Services,
    body: Annotated[RollbackBody | None, Body()] = None,
) -> JSON:
    body = body or RollbackBody()
    reply = await services.call(
        services.registry.Rollback,
        registry_pb2.RollbackRequest(prompt=prompt, reason=body.reason),
        principal=principal,
    )
    return ok(
        {
            "rolledBack": True,
            "version": reply.version,
            "versionId": reply.version_id,
            "previousVersion": reply.previous_version or None,
            "reason": reply.reason,
        }
    )


@router.get(
    "/{prompt}/promotions", response_model=Page[PromotionOut], summary="The trail of production moves"
)
async def list_promotions(
    prompt: PromptRef, principal: Reader, services: Services, limit: Limit = 20, cursor: Cursor = None
) -> JSON:
    reply = await services.call(
        services.registry.ListPromotions,
        registry_pb2.ListPromotionsRequest(prompt=prompt, page=page_request(limit, cursor)),
        principal=principal,
    )
    trail = [
        {
            "kind": p.kind,
            "fromVersion": p.from_version or None,
            "toVersion": p.to_version,
            "toVersionId": p.to_version_id,
            "actor": p.actor,
            "reason": p.reason,
            "gate": _gate(p.gate_json),
            "at": p.at,
        }
        for p in reply.promotions
    ]
    return page(trail, reply.page, limit)


async def _prompt_id(services: Backends, prompt: str, principal: Principal) -> str:
    reply = await services.call(
        services.registry.GetPrompt, registry_pb2.GetPromptRequest(prompt=prompt), principal=principal
    )
    return str(reply.id)


@router.get("/{prompt}/gate", response_model=GatePolicyOut, summary="The prompt's gate policy")
async def get_gate_policy(prompt: PromptRef, principal: Reader, services: Services) -> JSON:
    prompt_id = await _prompt_id(services, prompt, principal)
    reply = await services.call(
        services.evals.GetGatePolicy, evals_pb2.GetGatePolicyRequest(prompt_id=prompt_id), principal=principal
    )
    return ok(orjson.loads(reply.policy_json))


@router.put(
    "/{prompt}/gate",
    response_model=GatePolicyOut,
    summary="Replace the prompt's gate policy (omitted fields take their defaults)",
)
async def put_gate_policy(
    prompt: PromptRef, body: GatePolicyBody, principal: Promoter, services: Services
) -> JSON:
    prompt_id = await _prompt_id(services, prompt, principal)
    policy = body.model_dump(by_alias=True)
    policy["metricThresholds"] = {
        name: {k: v for k, v in bounds.items() if v is not None}
        for name, bounds in policy["metricThresholds"].items()
    }
    reply = await services.call(
        services.evals.PutGatePolicy,
        evals_pb2.PutGatePolicyRequest(prompt_id=prompt_id, policy_json=orjson.dumps(policy).decode()),
        principal=principal,
    )
    return ok(orjson.loads(reply.policy_json))
