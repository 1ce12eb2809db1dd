"""Evaluations, the per-version gate view, harness configuration and the harness callback: evals routes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request

from pvc.gateway.auth import require
from pvc.gateway.clients import Services
from pvc.gateway.identity import Principal
from pvc.gateway.responses import ERRORS, JSON, Cursor, Limit, ok, page, page_request, uuid_or_404
from pvc.gateway.schemas import (
    HARNESS_PATTERN,
    UUID_PATTERN,
    CreateEvaluation,
    DataList,
    EvaluationOut,
    GateOut,
    HarnessOut,
    Page,
    PutHarness,
    TriggerEvaluation,
)
from pvc.v1 import evals_pb2

router = APIRouter(prefix="/api/v1/evaluations", tags=["evaluations"], responses=ERRORS)

Reader = Annotated[Principal, Depends(require("read"))]
EvalWriter = Annotated[Principal, Depends(require("evals:write"))]
# The callback carries no API key: the gateway knows no project for it, and evals authenticates
# it by the harness's signature, finding the project from the evaluation itself.
CALLBACK_CALLER = Principal(
    key_id=uuid.UUID(int=0),
    project_id=uuid.UUID(int=0),
    name="harness-callback",
    scopes=frozenset(),
    rate_limit_per_second=None,
)


def evaluation_json(e: evals_pb2.Evaluation) -> dict[str, Any]:
    return {
        "id": e.id,
        "versionId": e.version_id,
        "promptId": e.prompt_id,
        "harness": e.harness,
        "status": e.status,
        "score": e.score if e.HasField("score") else None,
        "metrics": orjson.loads(e.metrics_json or "{}"),
        "details": orjson.loads(e.details_json or "null"),
        "externalId": e.external_id or None,
        "createdAt": e.created_at,
        "completedAt": e.completed_at or None,
    }


def harness_json(h: evals_pb2.Harness, *, with_secret: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": h.name,
        "url": h.url,
        "timeoutSeconds": h.timeout_seconds,
        "createdAt": h.created_at,
        "updatedAt": h.updated_at,
    }
    if with_secret and h.secret:
        data["secret"] = h.secret
    return data


@router.post("", status_code=201, response_model=EvaluationOut, summary="Record an evaluation result")
async def create_evaluation(body: CreateEvaluation, principal: EvalWriter, services: Services) -> JSON:
    request = evals_pb2.CreateEvaluationRequest(
        version_id=body.version_id,
        harness=body.harness,
        status=body.status,
        metrics_json=orjson.dumps(body.metrics).decode(),
        details_json=orjson.dumps(body.details).decode(),
        external_id=body.external_id or "",
    )
    if body.score is not None:
        request.score = body.score
    reply = await services.call(services.evals.CreateEvaluation, request, principal=principal)
    return ok(evaluation_json(reply), 201)


@router.get("", response_model=Page[EvaluationOut], summary="List evaluations, newest first")
async def list_evaluations(
    principal: Reader,
    services: Services,
    limit: Limit = 20,
    cursor: Cursor = None,
    version_id: Annotated[str | None, Query(alias="versionId", pattern=UUID_PATTERN)] = None,
    prompt_id: Annotated[str | None, Query(alias="promptId", pattern=UUID_PATTERN)] = None,
    harness: Annotated[str | None, Query(pattern=HARNESS_PATTERN)] = None,
) -> JSON:
    reply = await services.call(
        services.evals.ListEvaluations,
        evals_pb2.ListEvaluationsRequest(
            page=page_request(limit, cursor),
            version_id=version_id or "",
            prompt_id=prompt_id or "",
            harness=harness or "",
        ),
        principal=principal,
    )
    return page([evaluation_json(e) for e in reply.evaluations], reply.page, limit)


@router.post(
    "/trigger",
    status_code=202,
    response_model=EvaluationOut,
    summary="Send a version to a configured harness; its answer arrives at the callback",
)
async def trigger_evaluation(body: TriggerEvaluation, principal: EvalWriter, services: Services) -> JSON:
    reply = await services.call(
        services.evals.TriggerEvaluation,
        evals_pb2.TriggerEvaluationRequest(version_id=body.version_id, harness=body.harness),
        principal=principal,
    )
    return ok(evaluation_json(reply), 202)


@router.get("/harnesses", response_model=DataList[HarnessOut], summary="Configured harnesses (no secrets)")
async def list_harnesses(principal: Reader, services: Services) -> JSON:
    reply = await services.call(
        services.evals.ListHarnesses, evals_pb2.ListHarnessesRequest(), principal=principal
    )
    return ok({"data": [harness_json(h) for h in reply.harnesses]})


@router.put(
    "/harnesses/{name}",
    response_model=HarnessOut,
    summary="Create or update a harness; the secret is shown only when created or replaced",
)
async def put_harness(
    name: Annotated[str, Path(pattern=HARNESS_PATTERN)],
    body: PutHarness,
    principal: EvalWriter,
    services: Services,
) -> JSON:
    reply = await services.call(
        services.evals.PutHarness,
        evals_pb2.PutHarnessRequest(
            name=name, url=body.url, timeout_seconds=body.timeout_seconds, secret=body.secret or ""
        ),
        principal=principal,
    )
    return ok(harness_json(reply, with_secret=True))


@router.get("/versions/{versionId}/gate", response_model=GateOut, summary="The gate answer for a version")
async def version_gate(
    version_id: Annotated[str, Path(alias="versionId", max_length=64)], principal: Reader, services: Services
) -> JSON:
    reply = await services.call(
        services.evals.CheckGate,
        evals_pb2.CheckGateRequest(version_id=uuid_or_404(version_id, what="version")),
        principal=principal,
    )
    return ok(orjson.loads(reply.gate_json))


@router.get("/{id}", response_model=EvaluationOut, summary="One evaluation")
async def get_evaluation(
    evaluation_id: Annotated[str, Path(alias="id", max_length=64)], principal: Reader, services: Services
) -> JSON:
    reply = await services.call(
        services.evals.GetEvaluation,
        evals_pb2.GetEvaluationRequest(id=uuid_or_404(evaluation_id, what="evaluation")),
        principal=principal,
    )
    return ok(evaluation_json(reply))


@router.post(
    "/{id}/callback",
    response_model=EvaluationOut,
    summary="A harness's answer, signed with its secret (Standard Webhooks); no API key",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {
                            "status": {"enum": ["passed", "failed", "error", "running"]},
                            "score": {"type": "number", "minimum": 0, "maximum": 1},
                            "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                            "details": {},
                            "externalId": {"type": "string"},
                        },
                    }
                }
            },
        },
        "parameters": [
            {"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
            for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
        ],
    },
)
async def evaluation_callback(
    evaluation_id: Annotated[str, Path(alias="id", max_length=64)], request: Request, services: Services
) -> JSON:
    # The raw bytes: the signature covers exactly what the harness sent.
    body = await request.body()
    reply = await services.call(
        services.evals.Callback,
        evals_pb2.CallbackRequest(
            evaluation_id=uuid_or_404(evaluation_id, what="evaluation"),
            body=body,
            webhook_id=request.headers.get("webhook-id", ""),
            webhook_timestamp=request.headers.get("webhook-timestamp", ""),
            webhook_signature=request.headers.get("webhook-signature", ""),
        ),
        principal=CALLBACK_CALLER,
    )
    return ok(evaluation_json(reply))
