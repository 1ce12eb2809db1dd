"""Queries of the webhooks schema. Subscription queries are scoped by project; no domain rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from pvc.webhooks.models import Attempt, Delivery, Subscription

# Workers LISTEN here; whoever queues a delivery NOTIFYs at commit.
DELIVERY_CHANNEL = "pvc_webhooks_deliveries"


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def find_subscription(
    session: AsyncSession, *, project_id: uuid.UUID, subscription_id: uuid.UUID, for_update: bool = False
) -> Subscription | None:
    query = select(Subscription).where(
        Subscription.project_id == project_id, Subscription.id == subscription_id
    )
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def list_subscriptions(
    session: AsyncSession, *, project_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[Subscription]:
    query = select(Subscription).where(Subscription.project_id == project_id)
    if after:
        query = query.where(sa.tuple_(col(Subscription.created_at), col(Subscription.id)) < sa.tuple_(*after))
    query = query.order_by(col(Subscription.created_at).desc(), col(Subscription.id).desc()).limit(limit + 1)
    return list((await session.exec(query)).all())


async def active_subscriptions(
    session: AsyncSession, *, project_ids: Sequence[uuid.UUID]
) -> list[tuple[uuid.UUID, uuid.UUID, list[str]]]:
    """(id, project_id, events) of every active subscription of these projects."""
    if not project_ids:
        return []
    rows = await session.exec(
        select(col(Subscription.id), col(Subscription.project_id), col(Subscription.events)).where(
            col(Subscription.project_id).in_(set(project_ids)), col(Subscription.active).is_(True)
        )
    )
    return [(row[0], row[1], list(row[2])) for row in rows]


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert, skipping (subscription, event) pairs that already exist; returns how many were new."""
    if not rows:
        return 0
    result = await session.exec(
        insert(Delivery)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["subscription_id", "event_id"])
        .returning(col(Delivery.id))
    )
    inserted = len(result.all())
    if inserted:
        await notify_deliveries(session)
    return inserted


async def notify_deliveries(session: AsyncSession) -> None:
    await session.exec(select(sa.func.pg_notify(DELIVERY_CHANNEL, "")))


async def find_delivery(
    session: AsyncSession, *, subscription_id: uuid.UUID, delivery_id: uuid.UUID, for_update: bool = False
) -> Delivery | None:
    query = select(Delivery).where(Delivery.subscription_id == subscription_id, Delivery.id == delivery_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def list_deliveries(
    session: AsyncSession,
    *,
    subscription_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[Delivery]:
    query = select(Delivery).where(Delivery.subscription_id == subscription_id)
    if after:
        query = query.where(sa.tuple_(col(Delivery.created_at), col(Delivery.id)) < sa.tuple_(*after))
    query = query.order_by(col(Delivery.created_at).desc(), col(Delivery.id).desc()).limit(limit + 1)
    return list((await session.exec(query)).all())


async def list_attempts(session: AsyncSession, *, delivery_id: uuid.UUID) -> list[Attempt]:
    query = select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(col(Attempt.seq))
    return list((await session.exec(query)).all())
