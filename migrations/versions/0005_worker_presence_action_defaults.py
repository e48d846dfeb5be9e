"""worker presence (loaded actions) and pinned action defaults of versions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "definition_versions",
        sa.Column("action_defaults", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.create_table(
        "worker_presence",
        sa.Column("worker_id", sa.String(length=200), nullable=False),
        sa.Column("task_queue", sa.String(length=200), nullable=False),
        sa.Column("actions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_presence")),
    )
    op.create_index(
        op.f("ix_worker_presence_task_queue"), "worker_presence", ["task_queue"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_worker_presence_task_queue"), table_name="worker_presence")
    op.drop_table("worker_presence")
    op.drop_column("definition_versions", "action_defaults")
