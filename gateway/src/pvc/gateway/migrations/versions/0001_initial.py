"""gateway: projects, api keys, audit log (append-only), outbox

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

S = "gateway"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        schema=S,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("project_id", UUID(as_uuid=True), sa.ForeignKey(f"{S}.projects.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("rate_limit_per_second", sa.Float),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("last_used_at", TS),
        sa.Column("created_by", UUID(as_uuid=True)),
        sa.Column("created_at", TS, nullable=False),
        schema=S,
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"], schema=S)
    op.create_index("ix_api_keys_project", "api_keys", ["project_id", "created_at"], schema=S)
    op.create_table(
        "audit_logs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("project_id", UUID(as_uuid=True)),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor_id", sa.Text),
        sa.Column("actor_name", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("resource_type", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text),
        sa.Column("before", JSONB),
        sa.Column("after", JSONB),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text),
        sa.Column("ip", sa.Text),
        schema=S,
    )
    op.create_index("ix_audit_logs_project_at", "audit_logs", ["project_id", "at", "id"], schema=S)
    op.execute(
        f"""
        CREATE FUNCTION {S}.audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_logs is append-only';
        END $$;
        CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {S}.audit_logs
            FOR EACH STATEMENT EXECUTE FUNCTION {S}.audit_logs_append_only();
        """
    )
    create_outbox_table(schema=S)


def downgrade() -> None:
    op.execute(f"DROP TRIGGER IF EXISTS audit_logs_append_only ON {S}.audit_logs")
    op.execute(f"DROP FUNCTION IF EXISTS {S}.audit_logs_append_only()")
    for table in ("outbox", "audit_logs", "api_keys", "projects"):
        op.drop_table(table, schema=S)
