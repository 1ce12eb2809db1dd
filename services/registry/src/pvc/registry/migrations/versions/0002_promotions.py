"""registry: promotions (the trail of production moves)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "registry"


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("prompt_id", UUID(as_uuid=True), sa.ForeignKey(f"{S}.prompts.id"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("from_version_id", UUID(as_uuid=True), sa.ForeignKey(f"{S}.versions.id")),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version_id", UUID(as_uuid=True), sa.ForeignKey(f"{S}.versions.id"), nullable=False),
        sa.Column("to_version", sa.Integer, nullable=False),
        sa.Column("actor", sa.Text, nullable=False, server_default=""),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("gate", JSONB),
        sa.Column("undone_by", sa.BigInteger),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('promote', 'override', 'rollback')", name="ck_promotions_kind"),
        sa.CheckConstraint("kind <> 'override' OR reason <> ''", name="ck_promotions_override_reason"),
        schema=S,
    )
    op.create_index("ix_promotions_prompt_seq", "promotions", ["prompt_id", "seq"], schema=S)


def downgrade() -> None:
    op.drop_table("promotions", schema=S)
