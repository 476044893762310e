"""report indexes: actions by created/done time, covering indexes for grades and re-audits

The leadership digest (reports/digest.py) reads one period's actions (raised, done, or
still open at its end) and one period's domain grades; without the first three indexes it
scans both tables, so its cost would grow with the years of history kept. The two on
audits serve the re-audit figure, which must look at every Inadequate / Requires
Improvement audit ever submitted: candidates come from a covering index, and "is there a
later submitted audit of this case" is one index probe (halves that query on SQLite).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:00:00.000000
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audits', schema=None) as batch_op:
        batch_op.create_index('ix_audits_case_submitted', ['case_ref', 'submitted_at'],
                              unique=False)
        batch_op.create_index('ix_audits_grade_submitted',
                              ['overall_grade', 'submitted_at', 'case_ref', 'status'],
                              unique=False)

    with op.batch_alter_table('audit_actions', schema=None) as batch_op:
        batch_op.create_index('ix_audit_actions_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_audit_actions_done_at', ['done_at'], unique=False)

    with op.batch_alter_table('domain_grades', schema=None) as batch_op:
        batch_op.create_index('ix_domain_grades_audit_grade', ['audit_id', 'domain', 'grade'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('domain_grades', schema=None) as batch_op:
        batch_op.drop_index('ix_domain_grades_audit_grade')

    with op.batch_alter_table('audit_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_actions_done_at')
        batch_op.drop_index('ix_audit_actions_created_at')

    with op.batch_alter_table('audits', schema=None) as batch_op:
        batch_op.drop_index('ix_audits_grade_submitted')
        batch_op.drop_index('ix_audits_case_submitted')
