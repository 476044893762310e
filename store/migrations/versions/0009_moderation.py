"""moderation: rounds of moderating an audit, with per-domain grades (SPEC R10)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 23:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audits') as batch:
        batch.add_column(sa.Column('reworks', sa.Integer(), nullable=False,
                                   server_default='0'))
    op.create_table(
        'moderations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('audit_id', sa.Integer(), nullable=False),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('moderator_id', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('allocated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('auditor_overall', sa.String(length=32), nullable=True),
        sa.Column('overall_grade', sa.String(length=32), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['allocation_runs.id'],
                                name=op.f('fk_moderations_run_id_allocation_runs')),
        sa.ForeignKeyConstraint(['audit_id'], ['audits.id'],
                                name=op.f('fk_moderations_audit_id_audits')),
        sa.ForeignKeyConstraint(['moderator_id'], ['staff.staff_id'],
                                name=op.f('fk_moderations_moderator_id_staff')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_moderations')),
    )
    op.create_index(op.f('ix_moderations_run_id'), 'moderations', ['run_id'])
    op.create_index(op.f('ix_moderations_moderator_id'), 'moderations', ['moderator_id'])
    op.create_index(op.f('ix_moderations_status'), 'moderations', ['status'])
    op.create_index(op.f('ix_moderations_due_on'), 'moderations', ['due_on'])
    op.create_index(op.f('ix_moderations_decided_at'), 'moderations', ['decided_at'])
    op.create_index('uq_moderations_audit_round', 'moderations', ['audit_id', 'round'],
                    unique=True)
    op.create_index('ix_moderations_audit_status', 'moderations', ['audit_id', 'status'])
    op.create_table(
        'moderation_domains',
        sa.Column('moderation_id', sa.Integer(), nullable=False),
        sa.Column('domain', sa.String(length=64), nullable=False),
        sa.Column('auditor_grade', sa.String(length=32), nullable=False),
        sa.Column('moderator_grade', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['moderation_id'], ['moderations.id'],
                                name=op.f('fk_moderation_domains_moderation_id_moderations')),
        sa.PrimaryKeyConstraint('moderation_id', 'domain', name=op.f('pk_moderation_domains')),
    )


def downgrade() -> None:
    op.drop_table('moderation_domains')
    op.drop_index('ix_moderations_audit_status', table_name='moderations')
    op.drop_index('uq_moderations_audit_round', table_name='moderations')
    for col in ('decided_at', 'due_on', 'status', 'moderator_id', 'run_id'):
        op.drop_index(op.f(f'ix_moderations_{col}'), table_name='moderations')
    op.drop_table('moderations')
    with op.batch_alter_table('audits') as batch:
        batch.drop_column('reworks')
