"""Tables of the `registry` schema. Only this service reads or writes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from pvc.core.outbox import outbox_table

SCHEMA = "registry"


def _json(name: str) -> Any:
    return Field(sa_column=sa.Column(name, JSONB, nullable=False))


def _timestamp(name: str) -> Any:
    return Field(sa_column=sa.Column(name, sa.DateTime(timezone=True), nullable=False))


class Prompt(SQLModel, table=True):
    __tablename__ = "prompts"
    __table_args__ = (sa.UniqueConstraint("project_id", "name"), {"schema": SCHEMA})

    id: uuid.UUID = Field(primary_key=True)
    project_id: uuid.UUID = Field(index=True)
    name: str
    description: str = ""
    meta: dict[str, Any] = _json("metadata")
    archived: bool = False
    # Highest version number handed out; bumped under the prompt's row lock, so numbers never race.
    latest_version: int = 0
    created_at: datetime = _timestamp("created_at")
    updated_at: datetime = _timestamp("updated_at")


class Version(SQLModel, table=True):
    __tablename__ = "versions"
    __table_args__ = (sa.UniqueConstraint("prompt_id", "number"), {"schema": SCHEMA})

    id: uuid.UUID = Field(primary_key=True)
    prompt_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.prompts.id")
    project_id: uuid.UUID = Field(index=True)
    number: int
    template: str
    variables: list[Any] = _json("variables")
    config: dict[str, Any] = _json("config")
    checksum: str
    message: str = ""
    author: str = ""
    meta: dict[str, Any] = _json("metadata")
    created_at: datetime = _timestamp("created_at")


class Tag(SQLModel, table=True):
    """The primary key (prompt_id, name) is what makes a tag point at one version only."""

    __tablename__ = "tags"
    __table_args__ = {"schema": SCHEMA}

    prompt_id: uuid.UUID = Field(primary_key=True, foreign_key=f"{SCHEMA}.prompts.id")
    name: str = Field(primary_key=True)
    version_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.versions.id")
    updated_at: datetime = _timestamp("updated_at")


class TagEvent(SQLModel, table=True):
    """Every move or removal of a tag, append-only."""

    __tablename__ = "tag_history"
    __table_args__ = (sa.Index("ix_tag_history_prompt_tag", "prompt_id", "tag", "seq"), {"schema": SCHEMA})

    seq: int | None = Field(default=None, primary_key=True)
    prompt_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.prompts.id")
    tag: str
    kind: str  # "moved" | "removed"
    version_id: uuid.UUID | None = None
    version_number: int | None = None
    previous_version_number: int | None = None
    actor: str = ""
    at: datetime = _timestamp("at")


class Promotion(SQLModel, table=True):
    """Every move of production: promote (gate passed), override (with a reason) or rollback."""

    __tablename__ = "promotions"
    __table_args__ = (sa.Index("ix_promotions_prompt_seq", "prompt_id", "seq"), {"schema": SCHEMA})

    seq: int | None = Field(default=None, primary_key=True)
    prompt_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.prompts.id")
    kind: str  # "promote" | "override" | "rollback"
    from_version_id: uuid.UUID | None = None
    from_version: int | None = None
    to_version_id: uuid.UUID
    to_version: int
    actor: str = ""
    reason: str = ""
    gate: Any = Field(default=None, sa_column=sa.Column("gate", JSONB, nullable=True))
    # Set on a promote/override when a rollback undid it (the rollback's seq), so the next rollback
    # goes one step further back instead of bouncing between two versions.
    undone_by: int | None = None
    at: datetime = _timestamp("at")


outbox = outbox_table(SQLModel.metadata, schema=SCHEMA)
