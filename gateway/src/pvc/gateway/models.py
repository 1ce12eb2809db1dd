"""Tables of the `gateway` schema: projects, API keys and the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from pvc.core.outbox import outbox_table

SCHEMA = "gateway"


class Project(SQLModel, table=True):
    __tablename__ = "projects"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.Text, unique=True, nullable=False))
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class ApiKey(SQLModel, table=True):
    """A key is stored as its public prefix plus HMAC-SHA256(pepper, key); the key itself never is."""

    __tablename__ = "api_keys"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(primary_key=True)
    project_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.projects.id", index=True)
    name: str
    prefix: str = Field(index=True)
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), unique=True, nullable=False))
    scopes: list[str] = Field(sa_column=sa.Column(ARRAY(sa.Text), nullable=False))
    rate_limit_per_second: float | None = None
    expires_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    last_used_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    created_by: uuid.UUID | None = None
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class AuditLog(SQLModel, table=True):
    """Append-only: a trigger refuses UPDATE and DELETE."""

    __tablename__ = "audit_logs"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(primary_key=True)
    project_id: uuid.UUID | None = Field(default=None, index=True)
    at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    actor_id: str | None = None
    actor_name: str | None = None
    action: str
    resource_type: str
    resource_id: str | None = None
    before: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB))
    after: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(JSONB))
    outcome: str
    request_id: str | None = None
    ip: str | None = None


outbox = outbox_table(SQLModel.metadata, schema=SCHEMA)
