"""run activity feed (live streams) and run logs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TXID = sa.text("(pg_current_xact_id()::text)::bigint")


def upgrade() -> None:
    op.create_table(
        "run_feed",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("txid", sa.BigInteger(), server_default=_TXID, nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("definition_key", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dedupe", sa.String(length=200), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_feed")),
        sa.UniqueConstraint("run_id", "dedupe", name=op.f("uq_run_feed_run_id")),
    )
    op.create_index("ix_run_feed_tenant", "run_feed", ["tenant", "txid", "id"])
    op.create_table(
        "run_logs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("line_key", sa.String(length=64), nullable=False),
        sa.Column("step_path", sa.String(length=1024), nullable=True),
        sa.Column("loop", sa.String(length=256), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_logs")),
        sa.UniqueConstraint("run_id", "line_key", name=op.f("uq_run_logs_run_id")),
    )
    op.create_index("ix_run_logs_run_level", "run_logs", ["run_id", "level", "id"])


def downgrade() -> None:
    op.drop_index("ix_run_logs_run_level", table_name="run_logs")
    op.drop_table("run_logs")
    op.drop_index("ix_run_feed_tenant", table_name="run_feed")
    op.drop_table("run_feed")
