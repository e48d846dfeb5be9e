"""events, waits, human tasks, triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('event_deliveries',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('workflow_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('step_path', sa.String(length=1024), nullable=True),
    sa.Column('definition_key', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'event_id', 'run_id', name=op.f('pk_event_deliveries'))
    )
    op.create_index('ix_event_deliveries_run', 'event_deliveries', ['run_id'], unique=False)
    op.create_table('event_types',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('payload_schema', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.Column('correlation', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.Column('buffer_ttl_seconds', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'name', name=op.f('pk_event_types'))
    )
    op.create_table('events',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('correlation_key', sa.String(length=256), nullable=True),
    sa.Column('key_source', sa.String(length=16), nullable=True),
    sa.Column('payload', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='PENDING', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('routed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('tenant', 'event_id', name=op.f('pk_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_events_seq'))
    )
    op.create_index('ix_events_key', 'events', ['tenant', 'name', 'correlation_key', 'received_at'], unique=False)
    op.create_index('ix_events_pending', 'events', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'PENDING'"))
    op.create_index('ix_events_tenant_seq', 'events', ['tenant', 'seq'], unique=False)
    op.create_table('human_tasks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('workflow_id', sa.String(length=255), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('step_path', sa.String(length=1024), nullable=False),
    sa.Column('definition_key', sa.String(length=128), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('form', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('assignee', sa.String(length=256), nullable=True),
    sa.Column('role', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_by', sa.String(length=256), nullable=True),
    sa.Column('data', postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_human_tasks'))
    )
    op.create_index('ix_human_tasks_run', 'human_tasks', ['run_id'], unique=False)
    op.create_index('ix_human_tasks_tenant', 'human_tasks', ['tenant', 'status', 'created_at'], unique=False)
    op.create_table('waits',
    sa.Column('run_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('workflow_id', sa.String(length=255), nullable=False),
    sa.Column('step_path', sa.String(length=1024), nullable=False),
    sa.Column('loop', sa.String(length=256), nullable=True),
    sa.Column('event_names', postgresql.ARRAY(sa.String(length=128)), nullable=False),
    sa.Column('correlation_key', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('event_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('run_id', 'seq', name=op.f('pk_waits'))
    )
    op.create_index('ix_waits_open', 'waits', ['tenant', 'correlation_key'], unique=False, postgresql_where=sa.text("status = 'WAITING'"))
    op.create_table('trigger_subscriptions',
    sa.Column('tenant', sa.String(length=64), nullable=False),
    sa.Column('definition_key', sa.String(length=128), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('event_name', sa.String(length=128), nullable=False),
    sa.Column('filter', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant', 'definition_key'], ['definitions.tenant', 'definitions.key'], name=op.f('fk_trigger_subscriptions_tenant_definitions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant', 'definition_key', 'position', name=op.f('pk_trigger_subscriptions'))
    )
    op.create_index('ix_trigger_subscriptions_event', 'trigger_subscriptions', ['tenant', 'event_name'], unique=False)
    op.add_column('definitions', sa.Column('paused', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    op.drop_column('definitions', 'paused')
    op.drop_index('ix_trigger_subscriptions_event', table_name='trigger_subscriptions')
    op.drop_table('trigger_subscriptions')
    op.drop_index('ix_waits_open', table_name='waits', postgresql_where=sa.text("status = 'WAITING'"))
    op.drop_table('waits')
    op.drop_index('ix_human_tasks_tenant', table_name='human_tasks')
    op.drop_index('ix_human_tasks_run', table_name='human_tasks')
    op.drop_table('human_tasks')
    op.drop_index('ix_events_tenant_seq', table_name='events')
    op.drop_index('ix_events_pending', table_name='events', postgresql_where=sa.text("status = 'PENDING'"))
    op.drop_index('ix_events_key', table_name='events')
    op.drop_table('events')
    op.drop_table('event_types')
    op.drop_index('ix_event_deliveries_run', table_name='event_deliveries')
    op.drop_table('event_deliveries')
