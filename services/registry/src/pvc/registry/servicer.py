"""Thin adapter: protobuf requests in, domain calls, protobuf messages out."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, TypeAlias

from pvc.core.clock import rfc3339
from pvc.core.context import current_caller
from pvc.core.db import Database
from pvc.core.errors import ValidationFailed
from pvc.core.grpc_server import Registrar
from pvc.core.jsonvalues import dump_json, parse_json
from pvc.core.runner import ServiceSpec
from pvc.core.settings import ServiceSettings
from pvc.registry.gatekeeper import EvalsGate
from pvc.registry.models import SCHEMA, Promotion, Tag, TagEvent, Version, outbox
from pvc.registry.service import PromotionOutcome, PromptView, RegistryService, VersionSelector
from pvc.registry.settings import RegistrySettings
from pvc.v1 import common_pb2, registry_pb2, registry_pb2_grpc

# grpc ships no type information; the context is only passed through.
Ctx: TypeAlias = Any


def prompt_message(view: PromptView) -> registry_pb2.Prompt:
    p = view.prompt
    return registry_pb2.Prompt(
        id=str(p.id),
        project_id=str(p.project_id),
        name=p.name,
        description=p.description,
        metadata_json=dump_json(p.meta),
        archived=p.archived,
        latest_version=p.latest_version,
        tags=view.tags,
        created_at=rfc3339(p.created_at),
        updated_at=rfc3339(p.updated_at),
    )


def version_message(v: Version) -> registry_pb2.Version:
    return registry_pb2.Version(
        id=str(v.id),
        prompt_id=str(v.prompt_id),
        number=v.number,
        template=v.template,
        variables_json=dump_json(v.variables),
        config_json=dump_json(v.config),
        checksum=v.checksum,
        message=v.message,
        author=v.author,
        metadata_json=dump_json(v.meta),
        created_at=rfc3339(v.created_at),
    )


def tag_message(tag: Tag, version: Version) -> registry_pb2.Tag:
    return registry_pb2.Tag(
        name=tag.name,
        version_id=str(version.id),
        version_number=version.number,
        updated_at=rfc3339(tag.updated_at),
    )


def tag_move_message(event: TagEvent) -> registry_pb2.TagMove:
    return registry_pb2.TagMove(
        tag=event.tag,
        version_number=event.version_number or 0,
        previous_version_number=event.previous_version_number or 0,
        actor=event.actor,
        at=rfc3339(event.at),
        kind=event.kind,
    )


def promotion_result(outcome: PromotionOutcome) -> registry_pb2.PromotionResult:
    return registry_pb2.PromotionResult(
        promoted=True,
        version=outcome.version.number,
        previous_version=outcome.previous_version or 0,
        gate_json=dump_json(outcome.gate) if outcome.gate is not None else "",
        kind=outcome.kind,
        reason=outcome.reason,
        version_id=str(outcome.version.id),
    )


def promotion_message(row: Promotion) -> registry_pb2.Promotion:
    return registry_pb2.Promotion(
        kind=row.kind,
        from_version=row.from_version or 0,
        to_version=row.to_version,
        actor=row.actor,
        reason=row.reason,
        gate_json=dump_json(row.gate),
        at=rfc3339(row.at),
        to_version_id=str(row.to_version_id),
    )


def page_info(limit: int, next_cursor: str | None) -> common_pb2.PageInfo:
    return common_pb2.PageInfo(limit=limit, next_cursor=next_cursor or "")


def selector(ref: registry_pb2.VersionRef, *, tag: str = "") -> VersionSelector | None:
    which = ref.WhichOneof("ref")
    if which == "number":
        return VersionSelector(number=ref.number)
    if which == "id":
        version_id = _uuid_or_none(ref.id)
        # An id that is not a UUID cannot name any version: same answer as an unknown one.
        return VersionSelector(version_id=version_id or uuid.UUID(int=0))
    return VersionSelector(tag=tag) if tag else None


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, service: RegistryService) -> None:
        self.service = service

    async def CreatePrompt(
        self, request: registry_pb2.CreatePromptRequest, context: Ctx
    ) -> registry_pb2.CreatePromptResponse:
        view, version = await self.service.create_prompt(
            caller=current_caller(),
            name=request.name,
            description=request.description,
            metadata=parse_json(request.metadata_json, field="metadata", default={}, kind=dict),
            template=request.template if request.HasField("template") else None,
            variables=parse_json(request.variables_json, field="variables", default=[], kind=list),
            config=parse_json(request.config_json, field="config", default={}, kind=dict),
        )
        return registry_pb2.CreatePromptResponse(
            prompt=prompt_message(view), version=version_message(version) if version else None
        )

    async def GetPrompt(self, request: registry_pb2.GetPromptRequest, context: Ctx) -> registry_pb2.Prompt:
        return prompt_message(await self.service.get_prompt(caller=current_caller(), ref=request.prompt))

    async def ListPrompts(
        self, request: registry_pb2.ListPromptsRequest, context: Ctx
    ) -> registry_pb2.ListPromptsResponse:
        page = await self.service.list_prompts(
            caller=current_caller(),
            limit=request.page.limit,
            cursor=request.page.cursor,
            query=request.query,
            include_archived=request.include_archived,
        )
        return registry_pb2.ListPromptsResponse(
            prompts=[prompt_message(v) for v in page.items],
            page=page_info(request.page.limit, page.next_cursor),
        )

    async def UpdatePrompt(
        self, request: registry_pb2.UpdatePromptRequest, context: Ctx
    ) -> registry_pb2.Prompt:
        view = await self.service.update_prompt(
            caller=current_caller(),
            ref=request.prompt,
            description=request.description if request.HasField("description") else None,
            metadata=parse_json(request.metadata_json, field="metadata", default={}, kind=dict)
            if request.HasField("metadata_json")
            else None,
        )
        return prompt_message(view)

    async def ArchivePrompt(
        self, request: registry_pb2.ArchivePromptRequest, context: Ctx
    ) -> registry_pb2.Prompt:
        return prompt_message(await self.service.archive_prompt(caller=current_caller(), ref=request.prompt))

    async def CreateVersion(
        self, request: registry_pb2.CreateVersionRequest, context: Ctx
    ) -> registry_pb2.CreateVersionResponse:
        version, created = await self.service.create_version(
            caller=current_caller(),
            ref=request.prompt,
            template=request.template,
            variables=parse_json(request.variables_json, field="variables", default=[], kind=list),
            config=parse_json(request.config_json, field="config", default={}, kind=dict),
            message=request.message,
            metadata=parse_json(request.metadata_json, field="metadata", default={}, kind=dict),
        )
        return registry_pb2.CreateVersionResponse(version=version_message(version), created=created)

    async def GetVersion(self, request: registry_pb2.GetVersionRequest, context: Ctx) -> registry_pb2.Version:
        chosen = selector(request.version, tag=request.tag) or VersionSelector(tag="production")
        version = await self.service.get_version(caller=current_caller(), ref=request.prompt, selector=chosen)
        return version_message(version)

    async def ListVersions(
        self, request: registry_pb2.ListVersionsRequest, context: Ctx
    ) -> registry_pb2.ListVersionsResponse:
        page = await self.service.list_versions(
            caller=current_caller(), ref=request.prompt, limit=request.page.limit, cursor=request.page.cursor
        )
        return registry_pb2.ListVersionsResponse(
            versions=[version_message(v) for v in page.items],
            page=page_info(request.page.limit, page.next_cursor),
        )

    async def DiffVersions(
        self, request: registry_pb2.DiffVersionsRequest, context: Ctx
    ) -> registry_pb2.DiffVersionsResponse:
        diff = await self.service.diff(
            caller=current_caller(),
            ref=request.prompt,
            from_version=selector(request.from_version),
            to_version=selector(request.to_version),
        )
        return registry_pb2.DiffVersionsResponse(
            from_version=diff.from_version, to_version=diff.to_version, diff_json=dump_json(diff.document)
        )

    async def Render(self, request: registry_pb2.RenderRequest, context: Ctx) -> registry_pb2.RenderResponse:
        chosen = selector(request.version, tag=request.tag) or VersionSelector(tag="production")
        rendered = await self.service.render(
            caller=current_caller(),
            ref=request.prompt,
            selector=chosen,
            values=parse_json(request.variables_json, field="variables", default={}, kind=dict),
        )
        return registry_pb2.RenderResponse(
            version=version_message(rendered.version),
            rendered=rendered.result.rendered,
            variables_used=rendered.result.variables_used,
            missing_variables=rendered.result.missing_variables,
        )

    async def ListTags(
        self, request: registry_pb2.ListTagsRequest, context: Ctx
    ) -> registry_pb2.ListTagsResponse:
        tags = await self.service.list_tags(caller=current_caller(), ref=request.prompt)
        return registry_pb2.ListTagsResponse(tags=[tag_message(t, v) for t, v in tags])

    async def GetTag(self, request: registry_pb2.GetTagRequest, context: Ctx) -> registry_pb2.Tag:
        return tag_message(
            *await self.service.get_tag(caller=current_caller(), ref=request.prompt, name=request.name)
        )

    async def SetTag(self, request: registry_pb2.SetTagRequest, context: Ctx) -> registry_pb2.Tag:
        chosen = selector(request.version)
        if chosen is None:
            raise ValidationFailed(
                "versionId or version is required", details={"fields": {"versionId": "required"}}
            )
        tag, version = await self.service.set_tag(
            caller=current_caller(), ref=request.prompt, name=request.name, selector=chosen
        )
        return tag_message(tag, version)

    async def DeleteTag(
        self, request: registry_pb2.DeleteTagRequest, context: Ctx
    ) -> registry_pb2.DeleteTagResponse:
        await self.service.delete_tag(caller=current_caller(), ref=request.prompt, name=request.name)
        return registry_pb2.DeleteTagResponse()

    async def ListTagHistory(
        self, request: registry_pb2.ListTagHistoryRequest, context: Ctx
    ) -> registry_pb2.ListTagHistoryResponse:
        page = await self.service.tag_history(
            caller=current_caller(),
            ref=request.prompt,
            name=request.name,
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        return registry_pb2.ListTagHistoryResponse(
            moves=[tag_move_message(e) for e in page.items],
            page=page_info(request.page.limit, page.next_cursor),
        )

    async def LookupVersions(
        self, request: registry_pb2.LookupVersionsRequest, context: Ctx
    ) -> registry_pb2.LookupVersionsResponse:
        versions = await self.service.lookup_versions(
            caller=current_caller(), version_ids=list(request.version_ids)
        )
        return registry_pb2.LookupVersionsResponse(versions=[version_message(v) for v in versions])

    async def Promote(
        self, request: registry_pb2.PromoteRequest, context: Ctx
    ) -> registry_pb2.PromotionResult:
        outcome = await self.service.promote(
            caller=current_caller(), ref=request.prompt, version_id=request.version_id, reason=request.reason
        )
        return promotion_result(outcome)

    async def OverridePromotion(
        self, request: registry_pb2.OverridePromotionRequest, context: Ctx
    ) -> registry_pb2.PromotionResult:
        outcome = await self.service.override(
            caller=current_caller(), ref=request.prompt, version_id=request.version_id, reason=request.reason
        )
        return promotion_result(outcome)

    async def Rollback(
        self, request: registry_pb2.RollbackRequest, context: Ctx
    ) -> registry_pb2.PromotionResult:
        outcome = await self.service.rollback(
            caller=current_caller(), ref=request.prompt, reason=request.reason
        )
        return promotion_result(outcome)

    async def ListPromotions(
        self, request: registry_pb2.ListPromotionsRequest, context: Ctx
    ) -> registry_pb2.ListPromotionsResponse:
        page = await self.service.list_promotions(
            caller=current_caller(), ref=request.prompt, limit=request.page.limit, cursor=request.page.cursor
        )
        return registry_pb2.ListPromotionsResponse(
            promotions=[promotion_message(p) for p in page.items],
            page=page_info(request.page.limit, page.next_cursor),
        )


def _servicers(settings: ServiceSettings, db: Database) -> list[tuple[Registrar, object]]:
    assert isinstance(settings, RegistrySettings)
    gate = EvalsGate(
        address=settings.evals_addr,
        internal_token=settings.internal_token,
        deadline=settings.gate_deadline_seconds,
    )
    return [
        (
            registry_pb2_grpc.add_RegistryServiceServicer_to_server,
            RegistryServicer(RegistryService(db, gate=gate)),
        )
    ]


SPEC = ServiceSpec(
    name="registry",
    schema=SCHEMA,
    migrations=Path(__file__).parent / "migrations",
    settings=RegistrySettings,
    service_names=[registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name],
    servicers=_servicers,
    outbox=outbox,
)
