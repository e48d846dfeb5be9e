"""child runs, loops, action invocations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('action_invocations',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=128), nullable=False),
    sa.Column('action_version', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('step_path', sa.String(length=1024), nullable=False),
    sa.Column('loop', sa.String(length=256), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('output', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.Column('error', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('tenant', 'action', 'action_version', 'idempotency_key', name=op.f('pk_action_invocations'))
    )
    op.create_index(op.f('ix_action_invocations_run_id'), 'action_invocations', ['run_id'], unique=False)
    op.create_table('action_attempts',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=128), nullable=False),
    sa.Column('action_version', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.ForeignKeyConstraint(['tenant', 'action', 'action_version', 'idempotency_key'], ['action_invocations.tenant', 'action_invocations.action', 'action_invocations.action_version', 'action_invocations.idempotency_key'], name=op.f('fk_action_attempts_tenant_action_invocations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant', 'action', 'action_version', 'idempotency_key', 'run_id', 'attempt', name=op.f('pk_action_attempts'))
    )
    op.add_column('runs', sa.Column('parent_run_id', sa.String(length=36), nullable=True))
    op.add_column('runs', sa.Column('parent_step_path', sa.String(length=1024), nullable=True))
    op.create_index(op.f('ix_runs_parent_run_id'), 'runs', ['parent_run_id'], unique=False)
    op.add_column('steps', sa.Column('loop', sa.String(length=256), nullable=True))


def downgrade() -> None:
    op.drop_column('steps', 'loop')
    op.drop_index(op.f('ix_runs_parent_run_id'), table_name='runs')
    op.drop_column('runs', 'parent_step_path')
    op.drop_column('runs', 'parent_run_id')
    op.drop_table('action_attempts')
    op.drop_index(op.f('ix_action_invocations_run_id'), table_name='action_invocations')
    op.drop_table('action_invocations')
