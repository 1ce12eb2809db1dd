"""Queries of the evals schema. Every query is scoped by project (except the callback's lookup by id)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from pvc.evals.models import Evaluation, GatePolicy, Harness


async def find_evaluation(
    session: AsyncSession, *, evaluation_id: uuid.UUID, project_id: uuid.UUID | None, for_update: bool = False
) -> Evaluation | None:
    query = select(Evaluation).where(Evaluation.id == evaluation_id)
    if project_id is not None:
        query = query.where(Evaluation.project_id == project_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def list_evaluations(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    version_id: uuid.UUID | None,
    prompt_id: uuid.UUID | None,
    harness: str,
) -> list[Evaluation]:
    query = select(Evaluation).where(Evaluation.project_id == project_id)
    if version_id is not None:
        query = query.where(Evaluation.version_id == version_id)
    if prompt_id is not None:
        query = query.where(Evaluation.prompt_id == prompt_id)
    if harness:
        query = query.where(Evaluation.harness == harness)
    if after:
        query = query.where(sa.tuple_(col(Evaluation.created_at), col(Evaluation.id)) < sa.tuple_(*after))
    query = query.order_by(col(Evaluation.created_at).desc(), col(Evaluation.id).desc()).limit(limit + 1)
    return list((await session.exec(query)).all())


async def evaluations_of_version(
    session: AsyncSession, *, project_id: uuid.UUID, version_id: uuid.UUID
) -> list[Evaluation]:
    query = select(Evaluation).where(Evaluation.project_id == project_id, Evaluation.version_id == version_id)
    return list((await session.exec(query)).all())


async def find_policy(
    session: AsyncSession, *, project_id: uuid.UUID, prompt_id: uuid.UUID
) -> GatePolicy | None:
    query = select(GatePolicy).where(GatePolicy.project_id == project_id, GatePolicy.prompt_id == prompt_id)
    return (await session.exec(query)).first()


async def upsert_policy(session: AsyncSession, *, policy: GatePolicy) -> None:
    values = policy.model_dump()
    statement = insert(GatePolicy).values(**values)
    await session.exec(
        statement.on_conflict_do_update(
            index_elements=["project_id", "prompt_id"],
            set_={"policy": policy.policy, "updated_by": policy.updated_by, "updated_at": policy.updated_at},
        )
    )


async def find_harness(
    session: AsyncSession, *, project_id: uuid.UUID, name: str, for_update: bool = False
) -> Harness | None:
    query = select(Harness).where(Harness.project_id == project_id, Harness.name == name)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def list_harnesses(session: AsyncSession, *, project_id: uuid.UUID) -> list[Harness]:
    query = select(Harness).where(Harness.project_id == project_id).order_by(col(Harness.name))
    return list((await session.exec(query)).all())


async def claim_overdue(session: AsyncSession, *, now: datetime, limit: int) -> list[Evaluation]:
    """Unfinished evaluations past their deadline, locked; SKIP LOCKED lets replicas sweep together."""
    query = (
        select(Evaluation)
        .where(col(Evaluation.status).in_(("pending", "running")))
        .where(col(Evaluation.deadline_at).is_not(None), col(Evaluation.deadline_at) < now)
        .order_by(col(Evaluation.deadline_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.exec(query)).all())
