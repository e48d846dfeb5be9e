"""retention and observability indexes, events' trace context

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The W3C trace context of the request that sent an event (tracing on only).
    op.add_column(
        "events",
        sa.Column("trace_context", postgresql.JSONB(none_as_null=True), nullable=True),
    )
    # Pruning finds closed runs and settled events by age.
    op.create_index(
        "ix_runs_closed",
        "runs",
        ["closed_at"],
        postgresql_where=sa.text("closed_at IS NOT NULL"),
    )
    op.create_index(
        "ix_events_settled",
        "events",
        ["received_at"],
        postgresql_where=sa.text("status <> 'PENDING'"),
    )
    op.create_index("ix_action_attempts_run", "action_attempts", ["run_id"])
    # The open-run gauges (tempoflow_runs_open, tempoflow_runs_stale).
    op.create_index(
        "ix_runs_open",
        "runs",
        ["tenant", "status", "updated_at"],
        postgresql_where=sa.text("closed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_runs_open", table_name="runs")
    op.drop_index("ix_action_attempts_run", table_name="action_attempts")
    op.drop_index("ix_events_settled", table_name="events")
    op.drop_index("ix_runs_closed", table_name="runs")
    op.drop_column("events", "trace_context")
