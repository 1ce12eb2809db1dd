"""Thin adapter: protobuf requests in, domain calls, protobuf messages out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

from pvc.core.clock import rfc3339
from pvc.core.context import current_caller
from pvc.core.db import Database
from pvc.core.grpc_server import Registrar
from pvc.core.jsonvalues import dump_json, parse_json
from pvc.core.runner import ServiceSpec
from pvc.core.settings import ServiceSettings
from pvc.deployments.models import SCHEMA, Deployment, outbox
from pvc.deployments.repository import Aggregate
from pvc.deployments.service import DeploymentsService
from pvc.deployments.settings import DeploymentsSettings
from pvc.deployments.versions import RegistryVersions
from pvc.v1 import common_pb2, deployments_pb2, deployments_pb2_grpc

# grpc ships no type information; the context is only passed through.
Ctx: TypeAlias = Any


def deployment_message(d: Deployment) -> deployments_pb2.Deployment:
    return deployments_pb2.Deployment(
        id=str(d.id),
        project_id=str(d.project_id),
        prompt_id=str(d.prompt_id),
        name=d.name,
        status=d.status,
        variants=[
            deployments_pb2.Variant(
                version_id=v["versionId"],
                version_number=v.get("versionNumber") or 0,
                weight=v["weight"],
                is_control=v["isControl"],
            )
            for v in d.variants
        ],
        guardrails_json=dump_json(d.guardrails),
        seed=d.seed,
        paused_reason_json=dump_json(d.paused_reason) if d.paused_reason else "",
        created_at=rfc3339(d.created_at),
        updated_at=rfc3339(d.updated_at),
    )


def aggregate_message(a: Aggregate) -> deployments_pb2.MetricAggregate:
    return deployments_pb2.MetricAggregate(
        name=a.name,
        type=a.type,
        unit=a.unit,
        count=a.count,
        sum=a.sum,
        mean=a.mean,
        min=a.min,
        max=a.max,
        p50=a.p50,
        p95=a.p95,
        p99=a.p99,
        stddev=a.stddev,
    )


def variants_in(variants: Any) -> list[dict[str, Any]]:
    return [{"versionId": v.version_id, "weight": v.weight, "isControl": v.is_control} for v in variants]


class DeploymentsServicer(deployments_pb2_grpc.DeploymentsServiceServicer):
    def __init__(self, service: DeploymentsService) -> None:
        self.service = service

    async def CreateDeployment(
        self, request: deployments_pb2.CreateDeploymentRequest, context: Ctx
    ) -> deployments_pb2.Deployment:
        deployment = await self.service.create_deployment(
            caller=current_caller(),
            prompt_id=request.prompt_id,
            name=request.name,
            variants=variants_in(request.variants),
            status=request.status,
            guardrails=parse_json(request.guardrails_json, field="guardrails", default=[], kind=list),
        )
        return deployment_message(deployment)

    async def GetDeployment(
        self, request: deployments_pb2.GetDeploymentRequest, context: Ctx
    ) -> deployments_pb2.Deployment:
        return deployment_message(
            await self.service.get_deployment(caller=current_caller(), deployment_id=request.id)
        )

    async def ListDeployments(
        self, request: deployments_pb2.ListDeploymentsRequest, context: Ctx
    ) -> deployments_pb2.ListDeploymentsResponse:
        page = await self.service.list_deployments(
            caller=current_caller(),
            prompt_id=request.prompt_id,
            status=request.status,
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        return deployments_pb2.ListDeploymentsResponse(
            deployments=[deployment_message(d) for d in page.items],
            page=common_pb2.PageInfo(limit=request.page.limit, next_cursor=page.next_cursor or ""),
        )

    async def UpdateDeployment(
        self, request: deployments_pb2.UpdateDeploymentRequest, context: Ctx
    ) -> deployments_pb2.Deployment:
        deployment = await self.service.update_deployment(
            caller=current_caller(),
            deployment_id=request.id,
            status=request.status if request.HasField("status") else None,
            variants=variants_in(request.variants) if request.set_variants else None,
            guardrails=parse_json(request.guardrails_json, field="guardrails", default=[], kind=list)
            if request.HasField("guardrails_json")
            else None,
        )
        return deployment_message(deployment)

    async def ArchiveDeployment(
        self, request: deployments_pb2.GetDeploymentRequest, context: Ctx
    ) -> deployments_pb2.Deployment:
        return deployment_message(
            await self.service.archive_deployment(caller=current_caller(), deployment_id=request.id)
        )

    async def Resolve(
        self, request: deployments_pb2.ResolveRequest, context: Ctx
    ) -> deployments_pb2.ResolveResponse:
        resolved = await self.service.resolve(
            caller=current_caller(), deployment_id=request.id, session_id=request.session_id
        )
        return deployments_pb2.ResolveResponse(
            deployment_id=str(resolved.deployment.id),
            version_id=resolved.variant["versionId"],
            version_number=resolved.variant.get("versionNumber") or 0,
            session_id=request.session_id,
            sticky=resolved.sticky,
        )

    async def GetActiveDeployment(
        self, request: deployments_pb2.GetActiveDeploymentRequest, context: Ctx
    ) -> deployments_pb2.GetActiveDeploymentResponse:
        found = await self.service.active_deployment(caller=current_caller(), prompt_id=request.prompt_id)
        return deployments_pb2.GetActiveDeploymentResponse(
            deployment=deployment_message(found) if found else None
        )

    async def GetResults(
        self, request: deployments_pb2.GetResultsRequest, context: Ctx
    ) -> deployments_pb2.GetResultsResponse:
        document = await self.service.results(
            caller=current_caller(), deployment_id=request.id, start=request.start, end=request.end
        )
        return deployments_pb2.GetResultsResponse(results_json=dump_json(document))

    async def IngestMetrics(
        self, request: deployments_pb2.IngestMetricsRequest, context: Ctx
    ) -> deployments_pb2.IngestMetricsResponse:
        count = await self.service.ingest(caller=current_caller(), body=request.body)
        return deployments_pb2.IngestMetricsResponse(ingested=count)

    async def VersionMetrics(
        self, request: deployments_pb2.VersionMetricsRequest, context: Ctx
    ) -> deployments_pb2.MetricsResponse:
        rows = await self.service.version_metrics(
            caller=current_caller(),
            version_id=request.version_id,
            start=request.start,
            end=request.end,
            type=request.type,
            name=request.name,
        )
        return deployments_pb2.MetricsResponse(data=[aggregate_message(r) for r in rows])

    async def PromptMetrics(
        self, request: deployments_pb2.PromptMetricsRequest, context: Ctx
    ) -> deployments_pb2.PromptMetricsResponse:
        groups = await self.service.prompt_metrics(
            caller=current_caller(), prompt_id=request.prompt_id, start=request.start, end=request.end
        )
        return deployments_pb2.PromptMetricsResponse(
            data=[
                deployments_pb2.VersionAggregates(
                    version_id=str(g.version_id),
                    version_number=g.version_number,
                    metrics=[aggregate_message(m) for m in g.metrics],
                )
                for g in groups
            ]
        )


def _servicers(settings: ServiceSettings, db: Database) -> list[tuple[Registrar, object]]:
    assert isinstance(settings, DeploymentsSettings)
    versions = RegistryVersions(
        target=settings.registry_addr,
        internal_token=settings.internal_token,
        deadline=settings.grpc_deadline_seconds,
    )
    service = DeploymentsService(db, versions, guardrail_interval=settings.guardrail_interval_seconds)
    return [(deployments_pb2_grpc.add_DeploymentsServiceServicer_to_server, DeploymentsServicer(service))]


SPEC = ServiceSpec(
    name="deployments",
    schema=SCHEMA,
    migrations=Path(__file__).parent / "migrations",
    settings=DeploymentsSettings,
    service_names=[deployments_pb2.DESCRIPTOR.services_by_name["DeploymentsService"].full_name],
    servicers=_servicers,
    outbox=outbox,
)
