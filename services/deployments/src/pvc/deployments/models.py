"""Tables of the `deployments` schema. Only this service reads or writes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlmodel import Field, SQLModel

from pvc.core.outbox import outbox_table

SCHEMA = "deployments"


def _json(name: str, *, nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(name, JSONB, nullable=nullable))


def _timestamp(name: str, *, nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(name, sa.DateTime(timezone=True), nullable=nullable))


class Deployment(SQLModel, table=True):
    """Variants are kept in the row, in their stored order, which is part of the bucketing rule."""

    __tablename__ = "deployments"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(primary_key=True)
    project_id: uuid.UUID
    prompt_id: uuid.UUID
    name: str
    status: str  # active | paused | archived
    # [{versionId, versionNumber, weight, isControl}]
    variants: list[dict[str, Any]] = _json("variants")
    # [{metric, stat, max?, min?, minSamples}]
    guardrails: list[dict[str, Any]] = _json("guardrails")
    seed: str
    paused_reason: dict[str, Any] | None = _json("paused_reason", nullable=True)
    created_at: datetime = _timestamp("created_at")
    updated_at: datetime = _timestamp("updated_at")
    archived_at: datetime | None = _timestamp("archived_at", nullable=True)


# Append-only and written with COPY: a plain table without a primary key keeps ingest cheap, and the
# one index serves every aggregate (always filtered by version, usually by name and a time window).
metric_points = sa.Table(
    "metric_points",
    SQLModel.metadata,
    sa.Column("project_id", UUID(as_uuid=True), nullable=False),
    sa.Column("prompt_id", UUID(as_uuid=True), nullable=False),
    sa.Column("version_id", UUID(as_uuid=True), nullable=False),
    sa.Column("deployment_id", UUID(as_uuid=True)),
    sa.Column("session_id", sa.Text),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("value", sa.Float(precision=53), nullable=False),
    sa.Column("unit", sa.Text, nullable=False, server_default=""),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("dimensions", JSONB),
    sa.Index("ix_metric_points_version_name_ts", "version_id", "name", "ts"),
    schema=SCHEMA,
)

# Which versions have points, so per-prompt aggregates find their versions without scanning the points.
metric_series = sa.Table(
    "metric_series",
    SQLModel.metadata,
    sa.Column("version_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("project_id", UUID(as_uuid=True), nullable=False),
    sa.Column("prompt_id", UUID(as_uuid=True), nullable=False),
    sa.Column("version_number", sa.Integer, nullable=False),
    sa.Index("ix_metric_series_prompt", "project_id", "prompt_id"),
    schema=SCHEMA,
)

outbox = outbox_table(SQLModel.metadata, schema=SCHEMA)
