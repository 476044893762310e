"""outbox: a message with no next attempt time is due at once

A job replayed with ``--at`` for a day ahead of the machine's clock queues messages that
must still go now: the time a message was decided is ``created_at`` (the job's clock), and
``next_attempt_at`` is only set when a retry is pushed back (the sender's clock). NULL means
"due at once", whichever clock queued it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('next_attempt_at', existing_type=sa.DateTime(timezone=True),
                              nullable=True)


def downgrade() -> None:
    op.execute("UPDATE outbox SET next_attempt_at = created_at WHERE next_attempt_at IS NULL")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('next_attempt_at', existing_type=sa.DateTime(timezone=True),
                              nullable=False)
