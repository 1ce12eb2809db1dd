"""deployments: deployments, metric points and series, outbox

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from pvc.core.outbox import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "deployments"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("project_id", UUID(as_uuid=True), nullable=False),
        sa.Column("prompt_id", UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("variants", JSONB, nullable=False),
        sa.Column("guardrails", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("seed", sa.Text, nullable=False),
        sa.Column("paused_reason", JSONB),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("archived_at", TS),
        sa.CheckConstraint("status IN ('active', 'paused', 'archived')", name="ck_deployments_status"),
        schema=S,
    )
    op.create_index(
        "ix_deployments_project_created", "deployments", ["project_id", "created_at", "id"], schema=S
    )
    # One active deployment per prompt, enforced by the database.
    op.create_index(
        "ux_deployments_active_prompt",
        "deployments",
        ["prompt_id"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "metric_points",
        sa.Column("project_id", UUID(as_uuid=True), nullable=False),
        sa.Column("prompt_id", UUID(as_uuid=True), nullable=False),
        sa.Column("version_id", UUID(as_uuid=True), nullable=False),
        sa.Column("deployment_id", UUID(as_uuid=True)),
        sa.Column("session_id", sa.Text),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("unit", sa.Text, nullable=False, server_default=""),
        sa.Column("ts", TS, nullable=False),
        sa.Column("dimensions", JSONB),
        schema=S,
    )
    op.create_index(
        "ix_metric_points_version_name_ts", "metric_points", ["version_id", "name", "ts"], schema=S
    )
    op.create_table(
        "metric_series",
        sa.Column("version_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("project_id", UUID(as_uuid=True), nullable=False),
        sa.Column("prompt_id", UUID(as_uuid=True), nullable=False),
        sa.Column("version_number", sa.Integer, nullable=False),
        schema=S,
    )
    op.create_index("ix_metric_series_prompt", "metric_series", ["project_id", "prompt_id"], schema=S)
    create_outbox_table(schema=S)


def downgrade() -> None:
    for table in ("outbox", "metric_series", "metric_points", "deployments"):
        op.drop_table(table, schema=S)
