"""Domain rules of the registry: naming, numbering, dedup, tags, archive. No gRPC or HTTP types here."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel.ext.asyncio.session import AsyncSession

from pvc.core.clock import utcnow as now
from pvc.core.context import Caller
from pvc.core.db import Database
from pvc.core.errors import Conflict, NotFound, Unavailable, ValidationFailed
from pvc.core.outbox import record_event
from pvc.core.pagination import (
    Page,
    clamp_limit,
    decode_int_cursor,
    decode_time_cursor,
    encode_cursor,
    encode_time_cursor,
)
from pvc.registry import repository as repo
from pvc.registry.content import compute_checksum, declared_defaults
from pvc.registry.diffing import VersionContent, diff_versions
from pvc.registry.gatekeeper import Gate, GateCheck
from pvc.registry.models import Promotion, Prompt, Tag, TagEvent, Version, outbox
from pvc.registry.rendering import RenderResult, render_template

PROMPT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
TAG_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
PROTECTED_TAG = "production"
MAX_TEMPLATE_CHARS = 100_000
MAX_TEXT_CHARS = 10_000


@dataclass(frozen=True)
class PromptView:
    prompt: Prompt
    tags: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionSelector:
    """Exactly one of: a version id, a version number, or a tag name."""

    version_id: uuid.UUID | None = None
    number: int | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Diff:
    from_version: int
    to_version: int
    document: dict[str, Any]


@dataclass(frozen=True)
class PromotionOutcome:
    kind: str
    version: Version
    previous_version: int | None
    reason: str
    gate: dict[str, Any] | None


PROMOTION_EVENTS = {
    "promote": "promotion.succeeded",
    "override": "promotion.overridden",
    "rollback": "promotion.rolled_back",
}


@dataclass(frozen=True)
class Rendered:
    version: Version
    result: RenderResult


def _invalid(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"fields": {field_name: message}})


def validate_prompt_name(name: str) -> None:
    if not PROMPT_NAME.fullmatch(name):
        raise _invalid("name", "must match ^[a-z0-9][a-z0-9._-]{0,99}$")
    if repo.parse_uuid(name) is not None:
        raise _invalid("name", "must not be a UUID (it would be ambiguous with prompt ids)")


def validate_tag_name(name: str) -> None:
    if not TAG_NAME.fullmatch(name):
        raise _invalid("name", "tag names must match ^[a-z][a-z0-9-]{0,31}$")


def _refuse_protected(name: str, message: str) -> None:
    """A valid tag name that is not `production`: that one moves only through promotions."""
    validate_tag_name(name)
    if name == PROTECTED_TAG:
        raise Conflict(message, code="PROTECTED_TAG", details={"tag": name})


def _validate_text(field_name: str, value: str, *, limit: int = MAX_TEXT_CHARS) -> None:
    if len(value) > limit:
        raise _invalid(field_name, f"must be at most {limit} characters")


def validate_content(*, template: str, variables: list[Any], config: Mapping[str, Any]) -> None:
    if not template:
        raise _invalid("template", "must not be empty")
    _validate_text("template", template, limit=MAX_TEMPLATE_CHARS)
    for index, item in enumerate(variables):
        name = item if isinstance(item, str) else item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise _invalid(f"variables[{index}]", "must be a name or an object with a string 'name'")


def version_event_data(prompt: Prompt, version: Version) -> dict[str, Any]:
    return {
        "promptId": str(prompt.id),
        "promptName": prompt.name,
        "versionId": str(version.id),
        "versionNumber": version.number,
        "checksum": version.checksum,
        "message": version.message,
        "author": version.author,
    }


def prompt_event_data(prompt: Prompt) -> dict[str, Any]:
    return {
        "promptId": str(prompt.id),
        "name": prompt.name,
        "description": prompt.description,
        "metadata": prompt.meta,
        "archived": prompt.archived,
        "latestVersion": prompt.latest_version or None,
    }


class _NoGate:
    async def check(self, *, caller: Caller, version_id: uuid.UUID, prompt_id: uuid.UUID) -> GateCheck:
        raise Unavailable("no gate is configured", details={"dependency": "evals"})


class RegistryService:
    def __init__(self, db: Database, *, gate: Gate | None = None) -> None:
        self.db = db
        self.gate: Gate = gate or _NoGate()

    # -- prompts -------------------------------------------------------------------------------------

    async def create_prompt(
        self,
        *,
        caller: Caller,
        name: str,
        description: str,
        metadata: dict[str, Any],
        template: str | None,
        variables: list[Any],
        config: dict[str, Any],
    ) -> tuple[PromptView, Version | None]:
        validate_prompt_name(name)
        _validate_text("description", description)
        if template is not None:
            validate_content(template=template, variables=variables, config=config)
        moment = now()
        prompt = Prompt(
            id=uuid.uuid4(),
            project_id=caller.project_id,
            name=name,
            description=description,
            meta=metadata,
            created_at=moment,
            updated_at=moment,
        )
        try:
            async with self.db.transaction() as session:
                session.add(prompt)
                await session.flush()
                await record_event(
                    session,
                    outbox,
                    type="prompt.created",
                    project_id=caller.project_id,
                    data=prompt_event_data(prompt),
                )
                version = None
                if template is not None:
                    version = await self._append_version(
                        session,
                        caller=caller,
                        prompt=prompt,
                        template=template,
                        variables=variables,
                        config=config,
                        checksum=compute_checksum(template=template, variables=variables, config=config),
                        message="",
                        metadata={},
                    )
        except IntegrityError as exc:
            raise Conflict(f"a prompt named '{name}' already exists", details={"name": name}) from exc
        return PromptView(prompt), version

    async def get_prompt(self, *, caller: Caller, ref: str) -> PromptView:
        async with self.db.read() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref)
            return PromptView(prompt, (await repo.tags_by_prompt(session, [prompt.id]))[prompt.id])

    async def list_prompts(
        self, *, caller: Caller, limit: int, cursor: str, query: str, include_archived: bool
    ) -> Page[PromptView]:
        limit = clamp_limit(limit)
        after = decode_time_cursor(cursor)
        async with self.db.read() as session:
            rows = await repo.list_prompts(
                session,
                project_id=caller.project_id,
                limit=limit,
                after=after,
                name_contains=query,
                include_archived=include_archived,
            )
            page, more = rows[:limit], len(rows) > limit
            tags = await repo.tags_by_prompt(session, [p.id for p in page])
        next_cursor = encode_time_cursor(page[-1].created_at, page[-1].id) if more else None
        return Page([PromptView(p, tags[p.id]) for p in page], next_cursor)

    async def update_prompt(
        self, *, caller: Caller, ref: str, description: str | None, metadata: dict[str, Any] | None
    ) -> PromptView:
        if description is not None:
            _validate_text("description", description)
        async with self.db.transaction() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref, for_update=True)
            changes: dict[str, Any] = {}
            if description is not None and description != prompt.description:
                changes["description"] = [prompt.description, description]
                prompt.description = description
            if metadata is not None and metadata != prompt.meta:
                changes["metadata"] = [prompt.meta, metadata]
                prompt.meta = metadata
            if changes:
                prompt.updated_at = now()
                session.add(prompt)
                await record_event(
                    session,
                    outbox,
                    type="prompt.updated",
                    project_id=caller.project_id,
                    data={**prompt_event_data(prompt), "changes": changes},
                )
            tags = (await repo.tags_by_prompt(session, [prompt.id]))[prompt.id]
        return PromptView(prompt, tags)

    async def archive_prompt(self, *, caller: Caller, ref: str) -> PromptView:
        async with self.db.transaction() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref, for_update=True)
            if not prompt.archived:
                prompt.archived = True
                prompt.updated_at = now()
                session.add(prompt)
                await record_event(
                    session,
                    outbox,
                    type="prompt.archived",
                    project_id=caller.project_id,
                    data=prompt_event_data(prompt),
                )
            tags = (await repo.tags_by_prompt(session, [prompt.id]))[prompt.id]
        return PromptView(prompt, tags)

    # -- versions ------------------------------------------------------------------------------------

    async def create_version(
        self,
        *,
        caller: Caller,
        ref: str,
        template: str,
        variables: list[Any],
        config: dict[str, Any],
        message: str,
        metadata: dict[str, Any],
    ) -> tuple[Version, bool]:
        """Returns the version and whether it was created (False: same content as the latest)."""
        validate_content(template=template, variables=variables, config=config)
        _validate_text("message", message)
        checksum = compute_checksum(template=template, variables=variables, config=config)
        async with self.db.transaction() as session:
            # The row lock serialises creates per prompt: numbers are consecutive with no retry loop,
            # and the unique (prompt_id, number) constraint is the database's backstop.
            found = await repo.lock_prompt_for_append(session, project_id=caller.project_id, ref=ref)
            if found is None:
                raise NotFound(f"prompt '{ref}' not found", details={"prompt": ref})
            prompt, latest_checksum = found
            self._refuse_archived(prompt)
            if latest_checksum == checksum:
                latest = await repo.latest_version(session, prompt=prompt)
                assert latest is not None
                return latest, False
            version = await self._append_version(
                session,
                caller=caller,
                prompt=prompt,
                template=template,
                variables=variables,
                config=config,
                checksum=checksum,
                message=message,
                metadata=metadata,
            )
        return version, True

    async def _append_version(
        self,
        session: AsyncSession,
        *,
        caller: Caller,
        prompt: Prompt,
        template: str,
        variables: list[Any],
        config: dict[str, Any],
        checksum: str,
        message: str,
        metadata: dict[str, Any],
    ) -> Version:
        """The next version of a prompt locked (or created) in this transaction, and its event, in one
        round trip; the prompt object is brought up to date without the session writing it again."""
        moment = now()
        version = Version(
            id=uuid.uuid4(),
            prompt_id=prompt.id,
            project_id=prompt.project_id,
            number=prompt.latest_version + 1,
            template=template,
            variables=variables,
            config=config,
            checksum=checksum,
            message=message,
            author=caller.actor_name,
            meta=metadata,
            created_at=moment,
        )
        await record_event(
            session,
            outbox,
            type="version.created",
            project_id=prompt.project_id,
            data=version_event_data(prompt, version),
            along=repo.append_version_statements(prompt, version),
        )
        set_committed_value(prompt, "latest_version", version.number)
        set_committed_value(prompt, "updated_at", moment)
        return version

    async def get_version(self, *, caller: Caller, ref: str, selector: VersionSelector) -> Version:
        async with self.db.read() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref)
            return await self._version(session, prompt=prompt, selector=selector)

    async def list_versions(self, *, caller: Caller, ref: str, limit: int, cursor: str) -> Page[Version]:
        limit = clamp_limit(limit)
        before = decode_int_cursor(cursor)
        async with self.db.read() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref)
            rows = await repo.list_versions(session, prompt_id=prompt.id, limit=limit, before_number=before)
        page = rows[:limit]
        return Page(page, encode_cursor([page[-1].number]) if len(rows) > limit else None)

    async def diff(
        self,
        *,
        caller: Caller,
        ref: str,
        from_version: VersionSelector | None,
        to_version: VersionSelector | None,
    ) -> Diff:
        async with self.db.read() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref)
            if to_version is None:
                if prompt.latest_version == 0:
                    raise NotFound("the prompt has no versions")
                to_version = VersionSelector(number=prompt.latest_version)
            new = await self._version(session, prompt=prompt, selector=to_version)
            if from_version is None:
                if new.number == 1:
                    raise _invalid("fromVersion", "required: version 1 has no predecessor")
                from_version = VersionSelector(number=new.number - 1)
            old = await self._version(session, prompt=prompt, selector=from_version)
        result = diff_versions(old=_content(old), new=_content(new))
        return Diff(old.number, new.number, result.to_dict())

    async def render(
        self, *, caller: Caller, ref: str, selector: VersionSelector, values: dict[str, Any]
    ) -> Rendered:
        version = await self.get_version(caller=caller, ref=ref, selector=selector)
        return Rendered(
            version,
            render_template(
                template=version.template, values=values, defaults=declared_defaults(version.variables)
            ),
        )

    # -- tags ----------------------------------------------------------------------------------------

    async def list_tags(self, *, caller: Caller, ref: str) -> list[tuple[Tag, Version]]:
        async with self.db.read() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref)
            return await repo.list_tags(session, prompt_id=prompt.id)

    async def get_tag(self, *, caller: Caller, ref: str, name: str) -> tuple[Tag, Version]:
        validate_tag_name(name)
        async with self.db.read() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref)
            found = await repo.find_tag(session, prompt_id=prompt.id, name=name)
        if found is None:
            raise NotFound(f"tag '{name}' is not set on this prompt")
        return found

    async def set_tag(
        self, *, caller: Caller, ref: str, name: str, selector: VersionSelector
    ) -> tuple[Tag, Version]:
        _refuse_protected(name, "the production tag moves only through promote, override or rollback")
        async with self.db.transaction() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref, for_update=True)
            self._refuse_archived(prompt)
            version = await self._version(session, prompt=prompt, selector=selector)
            tag, _ = await self.move_tag(session, caller=caller, prompt=prompt, name=name, version=version)
        return tag, version

    async def move_tag(
        self, session: AsyncSession, *, caller: Caller, prompt: Prompt, name: str, version: Version
    ) -> tuple[Tag, int | None]:
        """Point `name` at `version` with its history row and event; the caller holds the prompt lock.

        Returns the tag as it now is and the number it pointed at before (None when it was unset). A
        move to the version it already points at changes nothing and records nothing.
        """
        current = await repo.find_tag(session, prompt_id=prompt.id, name=name)
        previous = current[1].number if current else None
        if current and current[1].id == version.id:
            return current[0], previous
        moment = now()
        history = TagEvent(
            prompt_id=prompt.id,
            tag=name,
            kind="moved",
            version_id=version.id,
            version_number=version.number,
            previous_version_number=previous,
            actor=caller.actor_name,
            at=moment,
        )
        await record_event(
            session,
            outbox,
            type="tag.moved",
            project_id=prompt.project_id,
            data={
                "promptId": str(prompt.id),
                "promptName": prompt.name,
                "tag": name,
                "versionId": str(version.id),
                "versionNumber": version.number,
                "previousVersionNumber": previous,
                "actor": caller.actor_name,
            },
            along=[
                repo.upsert_tag(prompt_id=prompt.id, name=name, version_id=version.id, at=moment),
                repo.insert_tag_event(history),
            ],
        )
        return Tag(prompt_id=prompt.id, name=name, version_id=version.id, updated_at=moment), previous

    async def delete_tag(self, *, caller: Caller, ref: str, name: str) -> None:
        _refuse_protected(name, "the production tag cannot be removed; roll back or promote instead")
        async with self.db.transaction() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref, for_update=True)
            self._refuse_archived(prompt)
            current = await repo.find_tag(session, prompt_id=prompt.id, name=name)
            if current is None:
                raise NotFound(f"tag '{name}' is not set on this prompt")
            history = TagEvent(
                prompt_id=prompt.id,
                tag=name,
                kind="removed",
                previous_version_number=current[1].number,
                actor=caller.actor_name,
                at=now(),
            )
            await record_event(
                session,
                outbox,
                type="tag.removed",
                project_id=prompt.project_id,
                data={
                    "promptId": str(prompt.id),
                    "promptName": prompt.name,
                    "tag": name,
                    "previousVersionNumber": current[1].number,
                    "actor": caller.actor_name,
                },
                along=[repo.delete_tag(prompt_id=prompt.id, name=name), repo.insert_tag_event(history)],
            )

    async def tag_history(
        self, *, caller: Caller, ref: str, name: str, limit: int, cursor: str
    ) -> Page[TagEvent]:
        validate_tag_name(name)
        limit = clamp_limit(limit)
        before = decode_int_cursor(cursor)
        async with self.db.read() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref)
            rows = await repo.tag_history(
                session, prompt_id=prompt.id, tag=name, limit=limit, before_seq=before
            )
        page = rows[:limit]
        return Page(page, encode_cursor([page[-1].seq]) if len(rows) > limit else None)

    # -- promotions ----------------------------------------------------------------------------------

    async def lookup_versions(self, *, caller: Caller, version_ids: list[str]) -> list[Version]:
        if len(version_ids) > 1000:
            raise _invalid("versionIds", "at most 1000 ids per call")
        ids = [vid for vid in (repo.parse_uuid(v) for v in version_ids) if vid is not None]
        async with self.db.read() as session:
            return await repo.lookup_versions(session, project_id=caller.project_id, version_ids=ids)

    async def promote(self, *, caller: Caller, ref: str, version_id: str, reason: str) -> PromotionOutcome:
        """Move production to `version_id` (default: staging) only if the evals gate passes now."""
        _validate_text("reason", reason)
        async with self.db.transaction() as session:
            # The prompt lock serialises every production move of this prompt, so concurrent promotes
            # queue and each sees the production the previous one left.
            prompt = await self._prompt(session, caller=caller, ref=ref, for_update=True)
            self._refuse_archived(prompt)
            if version_id:
                version = await self._version(session, prompt=prompt, selector=_by_id(version_id))
            else:
                staging = await repo.find_tag(session, prompt_id=prompt.id, name="staging")
                if staging is None:
                    raise Conflict(
                        "nothing to promote: no version is tagged staging",
                        code="NO_STAGING",
                        details={"promptId": str(prompt.id)},
                    )
                version = staging[1]
            await self._refuse_current(session, prompt=prompt, version=version)
            # Unavailable propagates: a gate that could not be checked never lets a promotion through.
            check = await self.gate.check(caller=caller, version_id=version.id, prompt_id=prompt.id)
            if check.can_promote:
                return await self._move_production(
                    session,
                    caller=caller,
                    prompt=prompt,
                    version=version,
                    kind="promote",
                    reason=reason,
                    gate=check.document,
                )
            blocked_event = {
                "promptId": str(prompt.id),
                "promptName": prompt.name,
                "versionId": str(version.id),
                "versionNumber": version.number,
                "actor": caller.actor_name,
                "reason": reason,
                "gate": check.document,
            }
        # Blocked attempts are not moves; their event commits on its own.
        async with self.db.transaction() as session:
            await record_event(
                session, outbox, type="promotion.blocked", project_id=prompt.project_id, data=blocked_event
            )
        raise Conflict(
            f"version {version.number} did not pass the gate",
            code="PROMOTION_BLOCKED",
            details={"gate": check.document},
        )

    async def override(self, *, caller: Caller, ref: str, version_id: str, reason: str) -> PromotionOutcome:
        """Move production without a passing gate; the reason is required and kept in the trail."""
        reason = reason.strip()
        if not reason:
            raise _invalid("reason", "is required to override the gate")
        _validate_text("reason", reason)
        if not version_id:
            raise _invalid("versionId", "is required")
        async with self.db.transaction() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref, for_update=True)
            self._refuse_archived(prompt)
            version = await self._version(session, prompt=prompt, selector=_by_id(version_id))
            await self._refuse_current(session, prompt=prompt, version=version)
            return await self._move_production(
                session,
                caller=caller,
                prompt=prompt,
                version=version,
                kind="override",
                reason=reason,
                gate=None,
            )

    async def rollback(self, *, caller: Caller, ref: str, reason: str) -> PromotionOutcome:
        """Production returns to the version that held it before the current one.

        The target is the `from` version of the latest promote/override that no rollback has undone
        yet; the rollback marks that move undone. So promote 1, 2, 3 then rollback, rollback goes
        3 -> 2 -> 1 (never bouncing between 3 and 2), and it never guesses with number - 1.
        """
        _validate_text("reason", reason)
        async with self.db.transaction() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref, for_update=True)
            self._refuse_archived(prompt)
            last = await repo.last_undoable_promotion(session, prompt_id=prompt.id)
            if last is None or last.from_version_id is None:
                raise Conflict(
                    "production has no previous version to roll back to",
                    code="NO_PREVIOUS",
                    details={"promptId": str(prompt.id)},
                )
            target = await repo.find_version_by_id(session, version_id=last.from_version_id)
            assert target is not None  # versions are never deleted
            outcome = await self._move_production(
                session,
                caller=caller,
                prompt=prompt,
                version=target,
                kind="rollback",
                reason=reason,
                gate=None,
                undoes=last,
            )
        return outcome

    async def list_promotions(self, *, caller: Caller, ref: str, limit: int, cursor: str) -> Page[Promotion]:
        limit = clamp_limit(limit)
        before = decode_int_cursor(cursor)
        async with self.db.read() as session:
            prompt = await self._prompt(session, caller=caller, ref=ref)
            rows = await repo.list_promotions(session, prompt_id=prompt.id, limit=limit, before_seq=before)
        page = rows[:limit]
        return Page(page, encode_cursor([page[-1].seq]) if len(rows) > limit else None)

    async def _refuse_current(self, session: AsyncSession, *, prompt: Prompt, version: Version) -> None:
        current = await repo.find_tag(session, prompt_id=prompt.id, name=PROTECTED_TAG)
        if current is not None and current[1].id == version.id:
            raise Conflict(
                f"version {version.number} is already in production",
                details={"version": version.number},
            )

    async def _move_production(
        self,
        session: AsyncSession,
        *,
        caller: Caller,
        prompt: Prompt,
        version: Version,
        kind: str,
        reason: str,
        gate: dict[str, Any] | None,
        undoes: Promotion | None = None,
    ) -> PromotionOutcome:
        """The tag move (with its history row and tag.moved), the trail row and the event: one transaction."""
        current = await repo.find_tag(session, prompt_id=prompt.id, name=PROTECTED_TAG)
        _, previous = await self.move_tag(
            session, caller=caller, prompt=prompt, name=PROTECTED_TAG, version=version
        )
        row = Promotion(
            prompt_id=prompt.id,
            kind=kind,
            from_version_id=current[1].id if current else None,
            from_version=previous,
            to_version_id=version.id,
            to_version=version.number,
            actor=caller.actor_name,
            reason=reason,
            gate=gate,
            at=now(),
        )
        session.add(row)
        await session.flush()
        if undoes is not None:
            undoes.undone_by = row.seq
            session.add(undoes)
        await record_event(
            session,
            outbox,
            type=PROMOTION_EVENTS[kind],
            project_id=prompt.project_id,
            data={
                "promptId": str(prompt.id),
                "promptName": prompt.name,
                "kind": kind,
                "versionId": str(version.id),
                "versionNumber": version.number,
                "previousVersionNumber": previous,
                "actor": caller.actor_name,
                "reason": reason,
                "gate": gate,
            },
        )
        return PromotionOutcome(
            kind=kind, version=version, previous_version=previous, reason=reason, gate=gate
        )

    # -- lookups -------------------------------------------------------------------------------------

    async def _prompt(
        self, session: AsyncSession, *, caller: Caller, ref: str, for_update: bool = False
    ) -> Prompt:
        prompt = await repo.find_prompt(session, project_id=caller.project_id, ref=ref, for_update=for_update)
        if prompt is None:
            raise NotFound(f"prompt '{ref}' not found", details={"prompt": ref})
        return prompt

    async def _version(self, session: AsyncSession, *, prompt: Prompt, selector: VersionSelector) -> Version:
        if selector.tag is not None:
            validate_tag_name(selector.tag)
            found = await repo.find_tag(session, prompt_id=prompt.id, name=selector.tag)
            if found is None:
                raise NotFound(f"no version is tagged '{selector.tag}'", details={"tag": selector.tag})
            return found[1]
        version = await repo.find_version(
            session, prompt_id=prompt.id, number=selector.number, version_id=selector.version_id
        )
        if version is None:
            shown = selector.number if selector.number is not None else selector.version_id
            raise NotFound(f"version {shown} not found for this prompt", details={"version": str(shown)})
        return version

    @staticmethod
    def _refuse_archived(prompt: Prompt) -> None:
        if prompt.archived:
            raise Conflict(
                f"prompt '{prompt.name}' is archived", code="ARCHIVED", details={"promptId": str(prompt.id)}
            )


def _by_id(version_id: str) -> VersionSelector:
    parsed = repo.parse_uuid(version_id)
    if parsed is None:
        raise _invalid("versionId", "must be a version id (UUID)")
    return VersionSelector(version_id=parsed)


def _content(version: Version) -> VersionContent:
    return VersionContent(template=version.template, variables=version.variables, config=version.config)
