"""outbox: who holds a claim, and whether its send had started

One elected sender delivers the outbox (store/sender_lock.py). ``claimed_by`` names the
sender (instance and term) that claimed a row; marking it sent, retried or failed checks it,
so a sender that lost its claim can never settle (or send) a row another one took over.
``send_started_at`` is set just before the call to Teams: after a crash, the rows with it
set are the only ones that may already have been delivered.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 23:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import store.models

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('send_started_at',
                                      store.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('send_started_at')
        batch_op.drop_column('claimed_by')
