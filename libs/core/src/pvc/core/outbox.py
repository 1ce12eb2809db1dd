"""Transactional outbox: an event row is written in the same transaction as the change it describes.

Every service owns an `outbox` table in its own schema. A relay (see `pvc.core.relay`) publishes
unsent rows to JetStream with `Nats-Msg-Id` = event id, so the stream drops duplicates.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.schema import SchemaItem
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from pvc.core.context import request_id_var


def _outbox_elements() -> list[SchemaItem]:
    """The outbox columns and index, new on each call: a Column belongs to exactly one Table."""
    return [
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("project_id", UUID(as_uuid=True), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        # W3C trace context of the transaction that wrote the event, for the NATS headers.
        sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Index("ix_outbox_unpublished", "created_at", postgresql_where=sa.text("published_at IS NULL")),
    ]


def outbox_table(metadata: sa.MetaData, *, schema: str) -> sa.Table:
    return sa.Table("outbox", metadata, *_outbox_elements(), schema=schema)


def notify_channel(schema: str) -> str:
    return f"pvc_outbox_{schema}"


def event_envelope(
    *, event_id: uuid.UUID, type: str, project_id: uuid.UUID, at: datetime, data: Any
) -> dict[str, Any]:
    return {
        "id": str(event_id),
        "type": type,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "projectId": str(project_id),
        "data": data,
    }


async def record_event(
    session: AsyncSession,
    table: sa.Table,
    *,
    type: str,
    project_id: uuid.UUID,
    data: dict[str, Any],
    along: Sequence[sa.Insert | sa.Update | sa.Delete] = (),
) -> uuid.UUID:
    """Add an event to the current transaction; it becomes visible to the relay only on commit.

    `along`: data-modifying statements (without RETURNING) that travel in the same round trip as the
    event, as CTEs of one statement: the change and its event are written together in every sense.
    """
    from opentelemetry import propagate

    event_id = uuid.uuid4()
    now = datetime.now(UTC)
    headers: dict[str, str] = {}
    propagate.inject(headers)
    request_id = request_id_var.get()
    if request_id:
        headers["x-request-id"] = request_id
    # One round trip: the row, and a NOTIFY that PostgreSQL delivers to listeners at commit, so the
    # relay wakes without polling.
    inserted = (
        table.insert()
        .values(
            id=event_id,
            type=type,
            project_id=project_id,
            payload=event_envelope(event_id=event_id, type=type, project_id=project_id, at=now, data=data),
            headers=headers,
            created_at=now,
        )
        .returning(table.c.id)
        .cte("recorded")
    )
    channel = notify_channel(str(table.schema))
    statement = select(sa.func.pg_notify(channel, "")).select_from(inserted)
    if along:
        statement = statement.add_cte(*(change.cte(f"change_{i}") for i, change in enumerate(along)))
    await session.exec(statement)
    return event_id


def create_outbox_table(*, schema: str) -> None:
    """For a service's first migration: the same outbox table in every schema."""
    from alembic import op

    # create_table also emits the index given among the elements.
    op.create_table("outbox", *_outbox_elements(), schema=schema)
