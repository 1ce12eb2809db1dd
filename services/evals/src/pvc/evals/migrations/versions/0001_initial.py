"""evals: evaluations, gate policies, harnesses, outbox

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

S = "evals"
TS = sa.DateTime(timezone=True)
STATUSES = "('passed', 'failed', 'error', 'pending', 'running')"


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("project_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("prompt_id", UUID(as_uuid=True), nullable=False),
        sa.Column("version_id", UUID(as_uuid=True), nullable=False),
        sa.Column("harness", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("metrics", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("details", JSONB),
        sa.Column("external_id", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS),
        sa.Column("deadline_at", TS),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_evaluations_status"),
        sa.CheckConstraint("score IS NULL OR (score >= 0 AND score <= 1)", name="ck_evaluations_score"),
        schema=S,
    )
    op.create_index(
        "ix_evaluations_version", "evaluations", ["version_id", "harness", "created_at"], schema=S
    )
    op.create_index(
        "ix_evaluations_project_created", "evaluations", ["project_id", "created_at", "id"], schema=S
    )
    # The timeout sweeper scans only unfinished triggered evaluations.
    op.create_index(
        "ix_evaluations_open_deadline",
        "evaluations",
        ["deadline_at"],
        schema=S,
        postgresql_where=sa.text("status IN ('pending', 'running') AND deadline_at IS NOT NULL"),
    )
    op.create_table(
        "gate_policies",
        sa.Column("project_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("prompt_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("policy", JSONB, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", TS, nullable=False),
        schema=S,
    )
    op.create_table(
        "harnesses",
        sa.Column("project_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("timeout_seconds", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        schema=S,
    )
    create_outbox_table(schema=S)


def downgrade() -> None:
    for table in ("outbox", "harnesses", "gate_policies", "evaluations"):
        op.drop_table(table, schema=S)
