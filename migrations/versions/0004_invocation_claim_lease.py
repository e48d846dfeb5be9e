"""action invocation claims: owner and lease

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("action_invocations", sa.Column("claimed_by", sa.Text(), nullable=True))
    op.add_column(
        "action_invocations", sa.Column("claimed_attempt", sa.Integer(), nullable=True)
    )
    op.add_column(
        "action_invocations",
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("action_invocations", "claimed_until")
    op.drop_column("action_invocations", "claimed_attempt")
    op.drop_column("action_invocations", "claimed_by")
