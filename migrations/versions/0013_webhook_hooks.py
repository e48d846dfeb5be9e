"""inbound webhook hooks

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_hooks",
        sa.Column("hook_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("definition_key", sa.String(128), nullable=False),
        sa.Column("trigger_name", sa.String(64), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant", "definition_key"],
            ["definitions.tenant", "definitions.key"],
            name=op.f("fk_webhook_hooks_tenant_definitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hook_id", name=op.f("pk_webhook_hooks")),
        sa.UniqueConstraint(
            "tenant",
            "definition_key",
            "trigger_name",
            name=op.f("uq_webhook_hooks_tenant"),
        ),
    )


def downgrade() -> None:
    op.drop_table("webhook_hooks")
