"""webhooks: subscriptions, deliveries, attempts, outbox

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from pvc.core.outbox import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "webhooks"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("project_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", ARRAY(sa.Text), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("disabled_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("secret_enc", sa.LargeBinary, nullable=False),
        sa.Column("previous_secret_enc", sa.LargeBinary),
        sa.Column("previous_secret_until", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("char_length(url) <= 2048", name="ck_subscriptions_url"),
        schema=S,
    )
    op.create_index(
        "ix_subscriptions_project_created", "subscriptions", ["project_id", "created_at", "id"], schema=S
    )
    op.create_table(
        "deliveries",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "subscription_id",
            UUID(as_uuid=True),
            sa.ForeignKey(f"{S}.subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project_id", UUID(as_uuid=True), nullable=False),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("trace", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retry_step", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("next_attempt_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("subscription_id", "event_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'dead')", name="ck_deliveries_status"
        ),
        schema=S,
    )
    op.create_index(
        "ix_deliveries_subscription_created", "deliveries", ["subscription_id", "created_at", "id"], schema=S
    )
    # What the workers poll: due deliveries only.
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        schema=S,
        postgresql_where=sa.text("status IN ('pending', 'failed')"),
    )
    op.create_table(
        "attempts",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "delivery_id",
            UUID(as_uuid=True),
            sa.ForeignKey(f"{S}.deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", TS, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("duration_ms", sa.Integer, nullable=False, server_default="0"),
        schema=S,
    )
    op.create_index("ix_attempts_delivery", "attempts", ["delivery_id", "seq"], schema=S)
    create_outbox_table(schema=S)


def downgrade() -> None:
    for table in ("outbox", "attempts", "deliveries", "subscriptions"):
        op.drop_table(table, schema=S)
