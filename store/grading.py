"""The final grade of an audit: the ONE place every report reads it from.

The final grade is the moderator's where a moderator regraded the audit (SPEC R10, a
``moderations`` round with status ``regraded``), otherwise the auditor's
(``Audit.overall_grade`` and the audit's ``DomainGrade`` rows). Only the last round of an
audit can be a regrade (a returned round is followed by another; an agreed or regraded one
ends the moderation), so there is at most one per audit. The digest, the monthly report,
the re-audits owed and the status command all read these two functions.

Persistence only: SQL expressions, no sentence, no time.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Subquery, and_, func, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from store.models import Audit, DomainGrade, Moderation, ModerationDomain

__all__ = ["REGRADED", "final_domain_grades", "final_overall_grade"]

REGRADED: Final = "regraded"


def final_overall_grade(audit: Any = Audit) -> ColumnElement[str | None]:
    """The final overall grade of ``audit`` (the model or an alias of it), as a column."""
    regrade = aliased(Moderation)
    moderated = (select(regrade.overall_grade)
                 .where(regrade.audit_id == audit.id, regrade.status == REGRADED)
                 .limit(1).correlate(audit).scalar_subquery())
    return func.coalesce(moderated, audit.overall_grade)


def final_domain_grades(name: str = "final_domain_grades") -> Subquery:
    """Final per-domain grades as a selectable with columns ``audit_id, domain, grade``."""
    regrade = aliased(Moderation)
    moderated = aliased(ModerationDomain)
    return (select(DomainGrade.audit_id.label("audit_id"), DomainGrade.domain.label("domain"),
                   func.coalesce(moderated.moderator_grade, DomainGrade.grade).label("grade"))
            .outerjoin(regrade, and_(regrade.audit_id == DomainGrade.audit_id,
                                     regrade.status == REGRADED))
            .outerjoin(moderated, and_(moderated.moderation_id == regrade.id,
                                       moderated.domain == DomainGrade.domain))
            .subquery(name))
