"""Queries of the registry schema. Every query is scoped by project; no domain rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from pvc.registry.models import Promotion, Prompt, Tag, TagEvent, Version


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _prompt_ref(project_id: uuid.UUID, ref: str) -> sa.ColumnElement[bool]:
    """`ref` is an id or a name; names that parse as UUIDs are refused at creation, so this is exact."""
    prompt_id = parse_uuid(ref)
    named = col(Prompt.id) == prompt_id if prompt_id else col(Prompt.name) == ref
    return sa.and_(col(Prompt.project_id) == project_id, named)


def _insert(row: SQLModel, *, generated: tuple[str, ...] = ()) -> sa.Insert:
    """A Core INSERT of an ORM object's values (no ORM bulk-persistence layer); `generated`: the
    attributes the database fills in."""
    mapper = sa.inspect(type(row))
    table = cast(sa.Table, mapper.local_table)
    values = {a.columns[0].name: getattr(row, a.key) for a in mapper.column_attrs if a.key not in generated}
    return sa.insert(table).values(values)


async def find_prompt(
    session: AsyncSession, *, project_id: uuid.UUID, ref: str, for_update: bool = False
) -> Prompt | None:
    query = select(Prompt).where(_prompt_ref(project_id, ref))
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def lock_prompt_for_append(
    session: AsyncSession, *, project_id: uuid.UUID, ref: str
) -> tuple[Prompt, str | None] | None:
    """The prompt, locked, with its latest version's checksum: what a version create needs, in one query."""
    latest = sa.and_(
        col(Version.prompt_id) == col(Prompt.id), col(Version.number) == col(Prompt.latest_version)
    )
    query = (
        select(Prompt, col(Version.checksum))
        .outerjoin(Version, latest)
        .where(_prompt_ref(project_id, ref))
        .with_for_update(of=Prompt)
    )
    row = (await session.exec(query)).first()
    return (row[0], row[1]) if row else None


def append_version_statements(prompt: Prompt, version: Version) -> list[sa.Insert | sa.Update]:
    """The version row and the prompt's new latest number, as statements to send with the event."""
    return [
        _insert(version),
        sa.update(Prompt)
        .where(col(Prompt.id) == prompt.id)
        .values(latest_version=version.number, updated_at=version.created_at),
    ]


async def tags_by_prompt(
    session: AsyncSession, prompt_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    if not prompt_ids:
        return {}
    rows = await session.exec(
        select(col(Tag.prompt_id), col(Tag.name), col(Version.number))
        .join(Version, col(Version.id) == col(Tag.version_id))
        .where(col(Tag.prompt_id).in_(prompt_ids))
        .order_by(Tag.name)
    )
    result: dict[uuid.UUID, dict[str, int]] = {pid: {} for pid in prompt_ids}
    for prompt_id, name, number in rows:
        result[prompt_id][name] = number
    return result


async def list_prompts(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    name_contains: str,
    include_archived: bool,
) -> list[Prompt]:
    query = select(Prompt).where(Prompt.project_id == project_id)
    if not include_archived:
        query = query.where(col(Prompt.archived).is_(False))
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(col(Prompt.name).ilike(f"%{escaped}%", escape="\\"))
    if after:
        query = query.where(sa.tuple_(col(Prompt.created_at), col(Prompt.id)) < sa.tuple_(*after))
    query = query.order_by(col(Prompt.created_at).desc(), col(Prompt.id).desc()).limit(limit + 1)
    return list((await session.exec(query)).all())


async def latest_version(session: AsyncSession, *, prompt: Prompt) -> Version | None:
    if prompt.latest_version == 0:
        return None
    return await find_version(session, prompt_id=prompt.id, number=prompt.latest_version)


async def find_version(
    session: AsyncSession,
    *,
    prompt_id: uuid.UUID,
    number: int | None = None,
    version_id: uuid.UUID | None = None,
) -> Version | None:
    query = select(Version).where(Version.prompt_id == prompt_id)
    query = (
        query.where(Version.number == number) if number is not None else query.where(Version.id == version_id)
    )
    return (await session.exec(query)).first()


async def list_versions(
    session: AsyncSession, *, prompt_id: uuid.UUID, limit: int, before_number: int | None
) -> list[Version]:
    query = select(Version).where(Version.prompt_id == prompt_id)
    if before_number is not None:
        query = query.where(Version.number < before_number)
    query = query.order_by(col(Version.number).desc()).limit(limit + 1)
    return list((await session.exec(query)).all())


async def find_tag(session: AsyncSession, *, prompt_id: uuid.UUID, name: str) -> tuple[Tag, Version] | None:
    row = (
        await session.exec(
            select(Tag, Version)
            .join(Version, col(Version.id) == col(Tag.version_id))
            .where(col(Tag.prompt_id) == prompt_id, col(Tag.name) == name)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def list_tags(session: AsyncSession, *, prompt_id: uuid.UUID) -> list[tuple[Tag, Version]]:
    rows = await session.exec(
        select(Tag, Version)
        .join(Version, col(Version.id) == col(Tag.version_id))
        .where(col(Tag.prompt_id) == prompt_id)
        .order_by(col(Tag.name))
    )
    return [(tag, version) for tag, version in rows]


def upsert_tag(*, prompt_id: uuid.UUID, name: str, version_id: uuid.UUID, at: datetime) -> sa.Insert:
    """Point the tag at the version (a statement to send with the tag's event)."""
    statement = insert(Tag).values(prompt_id=prompt_id, name=name, version_id=version_id, updated_at=at)
    return statement.on_conflict_do_update(
        index_elements=["prompt_id", "name"], set_={"version_id": version_id, "updated_at": at}
    )


def delete_tag(*, prompt_id: uuid.UUID, name: str) -> sa.Delete:
    return sa.delete(Tag).where(col(Tag.prompt_id) == prompt_id, col(Tag.name) == name)


def insert_tag_event(event: TagEvent) -> sa.Insert:
    """The history row (its `seq` comes from the database)."""
    return _insert(event, generated=("seq",))


async def tag_history(
    session: AsyncSession, *, prompt_id: uuid.UUID, tag: str, limit: int, before_seq: int | None
) -> list[TagEvent]:
    query = select(TagEvent).where(TagEvent.prompt_id == prompt_id, TagEvent.tag == tag)
    if before_seq is not None:
        query = query.where(col(TagEvent.seq) < before_seq)
    query = query.order_by(col(TagEvent.seq).desc()).limit(limit + 1)
    return list((await session.exec(query)).all())


async def lookup_versions(
    session: AsyncSession, *, project_id: uuid.UUID, version_ids: Sequence[uuid.UUID]
) -> list[Version]:
    if not version_ids:
        return []
    query = select(Version).where(Version.project_id == project_id, col(Version.id).in_(version_ids))
    return list((await session.exec(query)).all())


async def find_version_by_id(session: AsyncSession, *, version_id: uuid.UUID) -> Version | None:
    return (await session.exec(select(Version).where(Version.id == version_id))).first()


async def last_undoable_promotion(session: AsyncSession, *, prompt_id: uuid.UUID) -> Promotion | None:
    """The latest promote/override not already undone by a rollback: what a rollback reverses."""
    query = (
        select(Promotion)
        .where(Promotion.prompt_id == prompt_id)
        .where(col(Promotion.kind).in_(("promote", "override")), col(Promotion.undone_by).is_(None))
        .order_by(col(Promotion.seq).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()


async def list_promotions(
    session: AsyncSession, *, prompt_id: uuid.UUID, limit: int, before_seq: int | None
) -> list[Promotion]:
    query = select(Promotion).where(Promotion.prompt_id == prompt_id)
    if before_seq is not None:
        query = query.where(col(Promotion.seq) < before_seq)
    query = query.order_by(col(Promotion.seq).desc()).limit(limit + 1)
    return list((await session.exec(query)).all())
