"""per-trigger enablement and deleted definitions

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("definitions", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    op.add_column("definitions", sa.Column("deleted_by", sa.String(36)))
    op.create_table(
        "disabled_triggers",
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("definition_key", sa.String(128), nullable=False),
        sa.Column("trigger_name", sa.String(64), nullable=False),
        sa.Column("disabled_by", sa.String(36)),
        sa.Column(
            "disabled_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant", "definition_key"],
            ["definitions.tenant", "definitions.key"],
            name=op.f("fk_disabled_triggers_tenant_definitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant", "definition_key", "trigger_name", name=op.f("pk_disabled_triggers")
        ),
    )
    op.add_column("trigger_subscriptions", sa.Column("trigger_name", sa.String(64)))
    # Existing subscriptions get their trigger's name from the version they came from.
    op.execute(
        "UPDATE trigger_subscriptions s SET trigger_name = v.body->'triggers'->s.position->>'name' "
        "FROM definition_versions v "
        "WHERE v.tenant = s.tenant AND v.key = s.definition_key AND v.version = s.version"
    )


def downgrade() -> None:
    op.drop_column("trigger_subscriptions", "trigger_name")
    op.drop_table("disabled_triggers")
    op.drop_column("definitions", "deleted_by")
    op.drop_column("definitions", "deleted_at")
