"""Tables of the `webhooks` schema. Only this service reads or writes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from pvc.core.outbox import outbox_table

SCHEMA = "webhooks"


def _timestamp(name: str, *, nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(name, sa.DateTime(timezone=True), nullable=nullable))


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(primary_key=True)
    project_id: uuid.UUID = Field(index=True)
    url: str
    events: list[str] = Field(sa_column=sa.Column("events", ARRAY(sa.Text), nullable=False))
    description: str = ""
    active: bool = True
    disabled_reason: str = ""
    # AES-GCM ciphertexts (nonce + ciphertext) of the signing secrets; never the plaintext.
    secret_enc: bytes
    previous_secret_enc: bytes | None = None
    # Until when the previous secret keeps signing alongside the new one (24 h after a rotation).
    previous_secret_until: datetime | None = _timestamp("previous_secret_until", nullable=True)
    created_at: datetime = _timestamp("created_at")
    updated_at: datetime = _timestamp("updated_at")


class Delivery(SQLModel, table=True):
    """One event for one subscription. (subscription_id, event_id) is unique: fan-out is idempotent."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.UniqueConstraint("subscription_id", "event_id"), {"schema": SCHEMA})

    id: uuid.UUID = Field(primary_key=True)
    subscription_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.subscriptions.id")
    project_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    # The exact body sent on every attempt (the event envelope as published).
    body: str
    # W3C trace context carried from the event's NATS headers.
    trace: dict[str, str] = Field(sa_column=sa.Column("trace", JSONB, nullable=False))
    status: str = "pending"  # pending | succeeded | failed | dead
    attempts: int = 0
    # Failed attempts since the delivery was (re)queued: the position in the retry schedule.
    retry_step: int = 0
    last_status_code: int | None = None
    last_error: str = ""
    # When the next attempt is due; a worker that claims the row pushes it out by a lease.
    next_attempt_at: datetime | None = _timestamp("next_attempt_at", nullable=True)
    created_at: datetime = _timestamp("created_at")
    updated_at: datetime = _timestamp("updated_at")


class Attempt(SQLModel, table=True):
    __tablename__ = "attempts"
    __table_args__ = (sa.Index("ix_attempts_delivery", "delivery_id", "seq"), {"schema": SCHEMA})

    seq: int | None = Field(default=None, primary_key=True)
    delivery_id: uuid.UUID = Field(foreign_key=f"{SCHEMA}.deliveries.id")
    at: datetime = _timestamp("at")
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0


outbox = outbox_table(SQLModel.metadata, schema=SCHEMA)
