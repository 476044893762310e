"""moderated grades on the audit and its domain grades: the final grade without a join

A moderator's regrade is recorded as a round in ``moderations`` (0009); the grades it gives
are also kept on ``audits.moderated_grade`` and ``domain_grades.moderated_grade``, written
in the same transaction, so every report reads the final grade as
``coalesce(moderated_grade, grade)`` on the row itself (store/grading.py). Nothing to fill:
moderation (0009) ships in the same release, so no database has a regrade without these.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 00:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audits') as batch:
        batch.add_column(sa.Column('moderated_grade', sa.String(length=32), nullable=True))
    with op.batch_alter_table('domain_grades') as batch:
        batch.add_column(sa.Column('moderated_grade', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('domain_grades') as batch:
        batch.drop_column('moderated_grade')
    with op.batch_alter_table('audits') as batch:
        batch.drop_column('moderated_grade')
