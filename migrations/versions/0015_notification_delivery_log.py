"""notification delivery log

Revision ID: 0015
Revises: 0013
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = postgresql.JSONB(astext_type=sa.Text())


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("definition_key", sa.String(128), nullable=False),
        sa.Column("policy", sa.String(1024), nullable=False),
        sa.Column("step_path", sa.String(1024), nullable=True),
        sa.Column("loop", sa.String(256), nullable=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("recipient", JSON, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", JSON, nullable=True),
        sa.Column("provider_message_id", sa.Text(), nullable=True),
        sa.Column("request", JSON, nullable=False),
        sa.Column("resend_of", sa.String(36), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("tenant", "key", name=op.f("uq_notifications_tenant")),
    )
    op.create_index("ix_notifications_run", "notifications", ["run_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_run", table_name="notifications")
    op.drop_table("notifications")
