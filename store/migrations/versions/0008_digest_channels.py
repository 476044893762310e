"""digest channels: where the leadership digest is posted (registered with `digests here`)

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-10 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'digest_channels',
        sa.Column('conversation_id', sa.String(length=300), nullable=False),
        sa.Column('team_id', sa.String(length=300), nullable=True),
        sa.Column('team_name', sa.String(length=200), nullable=True),
        sa.Column('registered_by', sa.String(length=200), nullable=False),
        sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('conversation_id', name=op.f('pk_digest_channels')),
    )


def downgrade() -> None:
    op.drop_table('digest_channels')
