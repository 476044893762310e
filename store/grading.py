"""The final grade of an audit: the ONE place every report reads it from.

Today the final grade is the auditor's (``Audit.overall_grade`` and the audit's
``DomainGrade`` rows). When moderation lands (SPEC R10), a moderator's regrade becomes the
final grade: only these two functions change (a correlated lookup of the moderated grade,
falling back to the auditor's), and every report (the digest, the monthly report, the
re-audits owed, the calibration) follows without being touched.

Persistence only: SQL expressions, no sentence, no time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Subquery, select
from sqlalchemy.sql.elements import ColumnElement

from store.models import Audit, DomainGrade

__all__ = ["final_domain_grades", "final_overall_grade"]


def final_overall_grade(audit: Any = Audit) -> ColumnElement[str | None]:
    """The final overall grade of ``audit`` (the model or an alias of it), as a column."""
    return audit.overall_grade


def final_domain_grades(name: str = "final_domain_grades") -> Subquery:
    """Final per-domain grades as a selectable with columns ``audit_id, domain, grade``."""
    return (select(DomainGrade.audit_id.label("audit_id"), DomainGrade.domain.label("domain"),
                   DomainGrade.grade.label("grade"))
            .subquery(name))
