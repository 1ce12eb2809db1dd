"""Thin adapter: protobuf requests in, domain calls, protobuf messages out."""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeAlias

from pvc.core.clock import rfc3339
from pvc.core.context import current_caller
from pvc.core.db import Database
from pvc.core.grpc_server import Registrar
from pvc.core.jsonvalues import dump_json, parse_json
from pvc.core.runner import ServiceSpec
from pvc.core.settings import ServiceSettings
from pvc.evals.clients import HarnessSender, RegistryVersions
from pvc.evals.models import SCHEMA, Evaluation, Harness, outbox
from pvc.evals.service import EvalsService, run_timeouts
from pvc.evals.settings import EvalsSettings
from pvc.v1 import common_pb2, evals_pb2, evals_pb2_grpc

Ctx: TypeAlias = Any


def evaluation_message(ev: Evaluation) -> evals_pb2.Evaluation:
    message = evals_pb2.Evaluation(
        id=str(ev.id),
        version_id=str(ev.version_id),
        prompt_id=str(ev.prompt_id),
        harness=ev.harness,
        status=ev.status,
        metrics_json=dump_json(ev.metrics),
        details_json=dump_json(ev.details),
        external_id=ev.external_id,
        created_at=rfc3339(ev.created_at),
        completed_at=rfc3339(ev.completed_at) if ev.completed_at else "",
    )
    if ev.score is not None:
        message.score = ev.score
    return message


def harness_message(h: Harness, secret: str | None = None) -> evals_pb2.Harness:
    return evals_pb2.Harness(
        name=h.name,
        url=h.url,
        timeout_seconds=h.timeout_seconds,
        secret=secret or "",
        created_at=rfc3339(h.created_at),
        updated_at=rfc3339(h.updated_at),
    )


def _details(text: str) -> Any:
    return parse_json(text, field="details", default=None, kind=object)


class EvalsServicer(evals_pb2_grpc.EvalsServiceServicer):
    def __init__(self, service: EvalsService) -> None:
        self.service = service

    async def CreateEvaluation(
        self, request: evals_pb2.CreateEvaluationRequest, context: Ctx
    ) -> evals_pb2.Evaluation:
        ev = await self.service.create_evaluation(
            caller=current_caller(),
            version_id=request.version_id,
            harness=request.harness,
            status=request.status,
            score=request.score if request.HasField("score") else None,
            metrics=parse_json(request.metrics_json, field="metrics", default={}, kind=dict),
            details=_details(request.details_json),
            external_id=request.external_id,
        )
        return evaluation_message(ev)

    async def GetEvaluation(
        self, request: evals_pb2.GetEvaluationRequest, context: Ctx
    ) -> evals_pb2.Evaluation:
        return evaluation_message(
            await self.service.get_evaluation(caller=current_caller(), evaluation_id=request.id)
        )

    async def ListEvaluations(
        self, request: evals_pb2.ListEvaluationsRequest, context: Ctx
    ) -> evals_pb2.ListEvaluationsResponse:
        page = await self.service.list_evaluations(
            caller=current_caller(),
            limit=request.page.limit,
            cursor=request.page.cursor,
            version_id=request.version_id,
            prompt_id=request.prompt_id,
            harness=request.harness,
        )
        return evals_pb2.ListEvaluationsResponse(
            evaluations=[evaluation_message(e) for e in page.items],
            page=common_pb2.PageInfo(limit=request.page.limit, next_cursor=page.next_cursor or ""),
        )

    async def TriggerEvaluation(
        self, request: evals_pb2.TriggerEvaluationRequest, context: Ctx
    ) -> evals_pb2.Evaluation:
        ev = await self.service.trigger(
            caller=current_caller(), version_id=request.version_id, harness_name=request.harness
        )
        return evaluation_message(ev)

    async def Callback(self, request: evals_pb2.CallbackRequest, context: Ctx) -> evals_pb2.Evaluation:
        ev = await self.service.callback(
            evaluation_id=request.evaluation_id,
            body=request.body,
            msg_id=request.webhook_id,
            timestamp=request.webhook_timestamp,
            signature=request.webhook_signature,
        )
        return evaluation_message(ev)

    async def CheckGate(
        self, request: evals_pb2.CheckGateRequest, context: Ctx
    ) -> evals_pb2.CheckGateResponse:
        view = await self.service.check_gate(
            caller=current_caller(), version_id=request.version_id, prompt_id=request.prompt_id
        )
        return evals_pb2.CheckGateResponse(can_promote=view.can_promote, gate_json=dump_json(view.document))

    async def GetGatePolicy(
        self, request: evals_pb2.GetGatePolicyRequest, context: Ctx
    ) -> evals_pb2.GatePolicy:
        policy = await self.service.get_policy(caller=current_caller(), prompt_id=request.prompt_id)
        return evals_pb2.GatePolicy(prompt_id=request.prompt_id, policy_json=dump_json(policy))

    async def PutGatePolicy(
        self, request: evals_pb2.PutGatePolicyRequest, context: Ctx
    ) -> evals_pb2.GatePolicy:
        policy = await self.service.put_policy(
            caller=current_caller(),
            prompt_id=request.prompt_id,
            policy=parse_json(request.policy_json, field="policy", default={}, kind=dict),
        )
        return evals_pb2.GatePolicy(prompt_id=request.prompt_id, policy_json=dump_json(policy))

    async def PutHarness(self, request: evals_pb2.PutHarnessRequest, context: Ctx) -> evals_pb2.Harness:
        harness, secret = await self.service.put_harness(
            caller=current_caller(),
            name=request.name,
            url=request.url,
            timeout_seconds=request.timeout_seconds,
            secret=request.secret,
        )
        return harness_message(harness, secret)

    async def ListHarnesses(
        self, request: evals_pb2.ListHarnessesRequest, context: Ctx
    ) -> evals_pb2.ListHarnessesResponse:
        harnesses = await self.service.list_harnesses(caller=current_caller())
        return evals_pb2.ListHarnessesResponse(harnesses=[harness_message(h) for h in harnesses])


def _service(settings: ServiceSettings, db: Database) -> EvalsService:
    assert isinstance(settings, EvalsSettings)
    policy = settings.outbound_policy()
    return EvalsService(
        db,
        versions=RegistryVersions(
            address=settings.registry_addr,
            internal_token=settings.internal_token,
            deadline=settings.grpc_deadline_seconds,
        ),
        sender=HarnessSender(policy=policy, request_timeout=settings.harness_request_timeout_seconds),
        policy=policy,
        public_url=settings.public_url,
        callback_tolerance=settings.callback_tolerance_seconds,
    )


def _servicers(settings: ServiceSettings, db: Database) -> list[tuple[Registrar, object]]:
    return [(evals_pb2_grpc.add_EvalsServiceServicer_to_server, EvalsServicer(_service(settings, db)))]


def _background(settings: ServiceSettings, db: Database) -> list[Coroutine[Any, Any, None]]:
    assert isinstance(settings, EvalsSettings)
    return [run_timeouts(db, every=settings.timeout_sweep_seconds)]


SPEC = ServiceSpec(
    name="evals",
    schema=SCHEMA,
    migrations=Path(__file__).parent / "migrations",
    settings=EvalsSettings,
    service_names=[evals_pb2.DESCRIPTOR.services_by_name["EvalsService"].full_name],
    servicers=_servicers,
    outbox=outbox,
    background=_background,
)
