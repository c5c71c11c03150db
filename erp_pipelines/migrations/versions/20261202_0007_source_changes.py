"""source_change: who changed each record at the source last (IBM i journal user, job, program)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:08:56.676196
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('source_change',
    sa.Column('entity', sa.Text(), nullable=False),
    sa.Column('source_key', postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment="the record's exact key, as in sync_error"),
    sa.Column('changed_at', sa.DateTime(), nullable=True, comment='when the source recorded the change (its local time)'),
    sa.Column('changed_by', sa.Text(), nullable=True, comment="the source's user profile that made it"),
    sa.Column('job', sa.Text(), nullable=True, comment='the job that made it (IBM i: number/user/name)'),
    sa.Column('program', sa.Text(), nullable=True, comment='the program that made it (IBM i: library/program)'),
    sa.Column('position', sa.Text(), nullable=True, comment='where the source recorded it (journal and sequence)'),
    sa.Column('sync_run_id', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['sync_run_id'], ['sync_run.id'], name=op.f('fk_source_change_sync_run_id_sync_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('entity', 'source_key', name=op.f('pk_source_change')),
    comment='Per record, the last change at the source the sync saw, when the source records who made it'
    )


def downgrade() -> None:
    op.drop_table('source_change')
