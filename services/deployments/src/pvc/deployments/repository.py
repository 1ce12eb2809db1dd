"""Queries of the deployments schema. Every query is scoped by project; no domain rules here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from pvc.deployments.models import Deployment, metric_points, metric_series

COPY_COLUMNS = (
    "project_id",
    "prompt_id",
    "version_id",
    "deployment_id",
    "session_id",
    "type",
    "name",
    "value",
    "unit",
    "ts",
    "dimensions",
)


@dataclass(frozen=True)
class Aggregate:
    version_id: uuid.UUID
    name: str
    type: str
    unit: str
    count: int
    sum: float
    mean: float
    min: float
    max: float
    p50: float
    p95: float
    p99: float
    stddev: float


async def find_deployment(
    session: AsyncSession, *, project_id: uuid.UUID, deployment_id: uuid.UUID, for_update: bool = False
) -> Deployment | None:
    query = select(Deployment).where(Deployment.project_id == project_id, Deployment.id == deployment_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def active_deployment(
    session: AsyncSession, *, project_id: uuid.UUID, prompt_id: uuid.UUID
) -> Deployment | None:
    query = select(Deployment).where(
        Deployment.project_id == project_id, Deployment.prompt_id == prompt_id, Deployment.status == "active"
    )
    return (await session.exec(query)).first()


async def guarded_deployments(
    session: AsyncSession, *, project_id: uuid.UUID, prompt_ids: Iterable[uuid.UUID]
) -> list[uuid.UUID]:
    """Active deployments with guardrails on these prompts."""
    rows = await session.exec(
        select(col(Deployment.id)).where(
            col(Deployment.project_id) == project_id,
            col(Deployment.prompt_id).in_(list(prompt_ids)),
            col(Deployment.status) == "active",
            sa.func.jsonb_array_length(col(Deployment.guardrails)) > 0,
        )
    )
    return list(rows)


async def lock_for_evaluation(session: AsyncSession, *, deployment_id: uuid.UUID) -> Deployment | None:
    """The active deployment, locked; None when another replica is evaluating it right now."""
    query = (
        select(Deployment)
        .where(Deployment.id == deployment_id, Deployment.status == "active")
        .with_for_update(skip_locked=True)
    )
    return (await session.exec(query)).first()


async def existing_deployments(
    session: AsyncSession, *, project_id: uuid.UUID, deployment_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows = await session.exec(
        select(col(Deployment.id)).where(
            col(Deployment.project_id) == project_id, col(Deployment.id).in_(list(deployment_ids))
        )
    )
    return set(rows)


async def list_deployments(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    prompt_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[Deployment]:
    query = select(Deployment).where(Deployment.project_id == project_id)
    if prompt_id is not None:
        query = query.where(Deployment.prompt_id == prompt_id)
    if status is not None:
        query = query.where(Deployment.status == status)
    if after:
        query = query.where(sa.tuple_(col(Deployment.created_at), col(Deployment.id)) < sa.tuple_(*after))
    query = query.order_by(col(Deployment.created_at).desc(), col(Deployment.id).desc()).limit(limit + 1)
    return list((await session.exec(query)).all())


async def copy_points(session: AsyncSession, rows: Iterable[tuple[Any, ...]]) -> None:
    """COPY the rows in the session's transaction: far cheaper than INSERT for thousands of points."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    columns = ", ".join(COPY_COLUMNS)
    async with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {metric_points.schema}.{metric_points.name} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            await copy.write_row(row)


async def aggregates(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    version_ids: Sequence[uuid.UUID],
    start: datetime | None,
    end: datetime | None,
    type: str | None = None,
    names: Sequence[str] | None = None,
    deployment_id: uuid.UUID | None = None,
) -> list[Aggregate]:
    """count, sum, mean, min, max, p50/p95/p99 (continuous) and the sample stddev per (version, name).

    With `deployment_id`, points reported for another deployment are left out; points that name no
    deployment count (see docs/deployments.md).
    """
    if not version_ids:
        return []
    m = metric_points.c
    percentiles = sa.func.percentile_cont(sa.literal([0.5, 0.95, 0.99])).within_group(m.value)
    query = sa.select(
        m.version_id,
        m.name,
        sa.func.max(m.type),
        sa.func.max(m.unit),
        sa.func.count(),
        sa.func.sum(m.value),
        sa.func.avg(m.value),
        sa.func.min(m.value),
        sa.func.max(m.value),
        percentiles,
        sa.func.coalesce(sa.func.stddev_samp(m.value), 0.0),
    ).where(m.project_id == project_id, m.version_id.in_(list(version_ids)))
    if start is not None:
        query = query.where(m.ts >= start)
    if end is not None:
        query = query.where(m.ts < end)
    if type is not None:
        query = query.where(m.type == type)
    if names is not None:
        query = query.where(m.name.in_(list(names)))
    if deployment_id is not None:
        query = query.where(sa.or_(m.deployment_id == deployment_id, m.deployment_id.is_(None)))
    query = query.group_by(m.version_id, m.name).order_by(m.version_id, m.name)
    result = []
    # Through the connection: sqlmodel's typed select() stops at a few columns, and its session
    # deprecates execute() for Core statements.
    connection = await session.connection()
    for row in await connection.execute(query):
        p = row[9]
        result.append(
            Aggregate(
                version_id=row[0],
                name=row[1],
                type=row[2],
                unit=row[3],
                count=int(row[4]),
                sum=float(row[5]),
                mean=float(row[6]),
                min=float(row[7]),
                max=float(row[8]),
                p50=float(p[0]),
                p95=float(p[1]),
                p99=float(p[2]),
                stddev=float(row[10]),
            )
        )
    return result


async def register_series(
    session: AsyncSession, series: Iterable[tuple[uuid.UUID, uuid.UUID, uuid.UUID, int]]
) -> None:
    """Remember which versions have points: (version_id, project_id, prompt_id, version_number)."""
    values = [
        {"version_id": v, "project_id": project, "prompt_id": prompt, "version_number": number}
        for v, project, prompt, number in series
    ]
    if values:
        await session.exec(insert(metric_series).values(values).on_conflict_do_nothing())


async def series_of_prompt(
    session: AsyncSession, *, project_id: uuid.UUID, prompt_id: uuid.UUID
) -> dict[uuid.UUID, int]:
    """Versions of a prompt that have metric points, with their numbers."""
    s = metric_series.c
    rows = await session.exec(
        select(s.version_id, s.version_number).where(s.project_id == project_id, s.prompt_id == prompt_id)
    )
    return {row[0]: row[1] for row in rows}
