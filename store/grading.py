"""The final grade of an audit: the ONE place every report reads it from, and writes it.

The final grade is the moderator's where a moderator regraded the audit (SPEC R10),
otherwise the auditor's. The regrade is recorded as a round in ``moderations`` (with the
auditor's and the moderator's grades per domain); :func:`record_regrade` also keeps the
moderator's grades on the audit row and its domain-grade rows, in the same transaction, so
the final grade is ``coalesce(moderated_grade, grade)`` on the row itself: no join, no
correlated lookup, whatever the size of the history. Only the last round of an audit can be
a regrade (a returned round is followed by another; an agreed or regraded one ends the
moderation), so there is at most one per audit. The digest, the monthly report, the
export, the re-audits owed and the allocation's history all read these functions.

Persistence only: SQL expressions and one write, no sentence, no time of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Subquery, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from store.models import Audit, DomainGrade

__all__ = ["clear_regrade", "final_domain_grades", "final_overall_grade", "record_regrade"]


def final_overall_grade(audit: Any = Audit) -> ColumnElement[str | None]:
    """The final overall grade of ``audit`` (the model or an alias of it), as a column."""
    return func.coalesce(audit.moderated_grade, audit.overall_grade)


def final_domain_grades(name: str = "final_domain_grades") -> Subquery:
    """Final per-domain grades as a selectable with columns ``audit_id, domain, grade``."""
    return (select(DomainGrade.audit_id.label("audit_id"), DomainGrade.domain.label("domain"),
                   func.coalesce(DomainGrade.moderated_grade, DomainGrade.grade).label("grade"))
            .subquery(name))


async def record_regrade(session: AsyncSession, audit_id: int, overall: str,
                         domains: Mapping[str, str]) -> None:
    """Make a moderator's grades the audit's final grades (inside the regrade's transaction)."""
    await session.execute(update(Audit).where(Audit.id == audit_id)
                          .values(moderated_grade=overall)
                          .execution_options(synchronize_session=False))
    for domain, grade in domains.items():
        await session.execute(update(DomainGrade)
                              .where(DomainGrade.audit_id == audit_id,
                                     DomainGrade.domain == domain)
                              .values(moderated_grade=grade)
                              .execution_options(synchronize_session=False))


def clear_regrade(audit: Audit) -> None:
    """An audit whose submission no longer stands (returned for rework) has no final grade
    of a moderator's either."""
    audit.moderated_grade = None
