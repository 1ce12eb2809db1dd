"""registry: prompts, versions, tags, tag history, outbox

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

S = "registry"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "prompts",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("project_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("latest_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("project_id", "name"),
        sa.CheckConstraint("name ~ '^[a-z0-9][a-z0-9._-]{0,99}$'", name="ck_prompts_name"),
        schema=S,
    )
    op.create_index("ix_prompts_project_created", "prompts", ["project_id", "created_at", "id"], schema=S)
    op.create_table(
        "versions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("prompt_id", UUID(as_uuid=True), sa.ForeignKey(f"{S}.prompts.id"), nullable=False),
        sa.Column("project_id", UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("template", sa.Text, nullable=False),
        sa.Column("variables", JSONB, nullable=False),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("author", sa.Text, nullable=False, server_default=""),
        sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("prompt_id", "number"),
        sa.CheckConstraint("number >= 1", name="ck_versions_number"),
        schema=S,
    )
    op.create_table(
        "tags",
        sa.Column("prompt_id", UUID(as_uuid=True), sa.ForeignKey(f"{S}.prompts.id"), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("version_id", UUID(as_uuid=True), sa.ForeignKey(f"{S}.versions.id"), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("name ~ '^[a-z][a-z0-9-]{0,31}$'", name="ck_tags_name"),
        schema=S,
    )
    op.create_table(
        "tag_history",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("prompt_id", UUID(as_uuid=True), sa.ForeignKey(f"{S}.prompts.id"), nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("version_id", UUID(as_uuid=True)),
        sa.Column("version_number", sa.Integer),
        sa.Column("previous_version_number", sa.Integer),
        sa.Column("actor", sa.Text, nullable=False, server_default=""),
        sa.Column("at", TS, nullable=False),
        schema=S,
    )
    op.create_index("ix_tag_history_prompt_tag", "tag_history", ["prompt_id", "tag", "seq"], schema=S)
    create_outbox_table(schema=S)


def downgrade() -> None:
    for table in ("outbox", "tag_history", "tags", "versions", "prompts"):
        op.drop_table(table, schema=S)
