"""Tables of the `evals` schema. Only this service reads or writes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pvc.core.outbox import outbox_table

SCHEMA = "evals"


def _json(name: str, *, nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(name, JSONB, nullable=nullable))


def _timestamp(name: str, *, nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(name, sa.DateTime(timezone=True), nullable=nullable))


class Evaluation(SQLModel, table=True):
    """One result of one harness for one version. Re-runs are new rows; the gate reads the latest."""

    __tablename__ = "evaluations"
    __table_args__ = (
        sa.Index("ix_evaluations_version", "version_id", "harness", "created_at"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(primary_key=True)
    project_id: uuid.UUID = Field(index=True)
    prompt_id: uuid.UUID
    version_id: uuid.UUID
    harness: str
    status: str
    score: float | None = None
    metrics: dict[str, Any] = _json("metrics")
    details: Any = _json("details", nullable=True)
    external_id: str = ""
    created_at: datetime = _timestamp("created_at")
    completed_at: datetime | None = _timestamp("completed_at", nullable=True)
    # Set for triggered evaluations: past it, a pending/running evaluation becomes `error`.
    deadline_at: datetime | None = _timestamp("deadline_at", nullable=True)


class GatePolicy(SQLModel, table=True):
    __tablename__ = "gate_policies"
    __table_args__ = {"schema": SCHEMA}

    project_id: uuid.UUID = Field(primary_key=True)
    prompt_id: uuid.UUID = Field(primary_key=True)
    policy: dict[str, Any] = _json("policy")
    updated_by: str = ""
    updated_at: datetime = _timestamp("updated_at")


class Harness(SQLModel, table=True):
    """Where a harness is reached and the secret both directions are signed with; per project."""

    __tablename__ = "harnesses"
    __table_args__ = {"schema": SCHEMA}

    project_id: uuid.UUID = Field(primary_key=True)
    name: str = Field(primary_key=True)
    url: str
    secret: str
    timeout_seconds: float
    created_at: datetime = _timestamp("created_at")
    updated_at: datetime = _timestamp("updated_at")


outbox = outbox_table(SQLModel.metadata, schema=SCHEMA)
