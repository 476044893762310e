"""Export of audits, domain grades, actions, Part B, moderations and auditor calibration
(SPEC R10, R13) for self-evaluation and Ofsted. Grades come with the final grade beside the
auditor's (``store/grading.py``: a moderator's regrade is final).

The export holds case references and action text, so it goes to authorised people only,
never to a channel. It pages through each table by primary key (keyset pagination: one short
query per batch, no long-lived cursor or transaction) and writes each batch before reading
the next, so memory stays flat however many years are exported. Files are written under a
temporary name and renamed when complete, so a half-written export is never mistaken for a
whole one.

Cells that a spreadsheet would run as a formula (text starting with = + - @ or a control
character) are prefixed with an apostrophe (OWASP "CSV injection"), since action text is
typed by staff and opened in Excel.
"""

from __future__ import annotations

import asyncio
import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Final

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from qa.framework import Framework
from qa.moderation import OVERALL
from qa.periods import month_key, shift_month
from store.grading import final_domain_grades, final_overall_grade
from store.models import Audit, AuditAction, DomainGrade, Moderation, PartB, Staff, Team
from store.moderation import calibration

BATCH: Final = 2000
FORMATS: Final = ("csv", "xlsx")
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")

#: The written findings of an audit, in ``Audit.answers``: export column -> answer key.
FINDINGS: Final = (
    ("strengths", "strengths"), ("worries", "worries"), ("needs_to_be_better", "better"),
    ("social_worker_took_part", "sw_took_part"), ("child_contacted", "child_contacted"),
    ("family_contacted", "family_contacted"),
    ("what_the_child_and_family_said", "feedback"), ("practice_to_celebrate", "celebrate"),
)  # fmt: skip
AUDIT_COLUMNS: Final = (
    "audit_id", "case_ref", "month", "team", "area", "tool", "reason", "auditor_id",
    "status", "allocated_at_utc", "deadline", "submitted_at_utc", "overall_grade",
    "overall_grade_label", "outcomes", "safeguarding_concern", *(c for c, _ in FINDINGS),
    "final_overall_grade", "final_overall_grade_label",
)  # fmt: skip
#: Free-text columns: wide in the workbook so they can be read.
_WIDE: Final = frozenset({"what", "strengths", "worries", "needs_to_be_better",
                          "what_the_child_and_family_said", "practice_to_celebrate",
                          "done_note", "extension_reason", "disagree_reason", "reflections",
                          "reason"})
DOMAIN_COLUMNS: Final = (
    "audit_id", "case_ref", "month", "team", "area", "domain", "domain_title", "grade",
    "grade_label", "final_grade", "final_grade_label",
)  # fmt: skip
MODERATION_COLUMNS: Final = (
    "moderation_id", "audit_id", "case_ref", "month", "team", "round", "moderator_id",
    "status", "allocated_at_utc", "due_on", "decided_at_utc", "decided_by",
    "auditor_overall_grade", "moderated_overall_grade", "reason",
)  # fmt: skip
CALIBRATION_COLUMNS: Final = (
    "auditor_id", "auditor_name", "domain", "domain_title", "moderated_audits",
    "moderated_grades", "agreed", "agreement_rate", "auditor_graded_higher",
    "auditor_graded_lower", "tendency", "enough_to_judge",
)  # fmt: skip
ACTION_COLUMNS: Final = (
    "action_id", "audit_id", "case_ref", "month", "team", "seq", "what", "owner_id", "due_on",
    "priority", "status", "created_at_utc", "done_at_utc", "done_by", "done_note",
    "first_due_on", "extension_asked_to", "extension_reason", "extension_decided_by",
)  # fmt: skip
PART_B_COLUMNS: Final = (
    "part_b_id", "audit_id", "case_ref", "month", "team", "staff_id", "relation", "status",
    "due_on", "agrees", "disagree_reason", "reflections", "discussed_in_supervision_on",
    "submitted_at_utc",
)  # fmt: skip


def safe_text(value: str) -> str:
    """Neutralise text a spreadsheet would evaluate as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


# --------------------------------------------------------------------------- writers


class _Sink:
    """One output table; blocking file work runs in a thread, off the event loop."""

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what was written: an export that failed half way must not look complete."""


class _CsvSink(_Sink):
    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".part")
        self.file: IO[str] = self.tmp.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)
        self.writer.writerow(header)

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        self.writer.writerows(tuple(_csv_cell(v) for v in row) for row in rows)

    def close(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, datetime):
        # Excel has no time zones: write the UTC wall time (the headers say _utc).
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


class _XlsxBook:
    """One workbook, one sheet per table, in openpyxl's write-only (streaming) mode."""

    def __init__(self, path: Path) -> None:
        try:
            from openpyxl import Workbook
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("XLSX export needs openpyxl: pip install openpyxl") from exc
        self.path = path
        self.tmp = path.with_name(path.name + ".part")
        self.book = Workbook(write_only=True)

    def sheet(self, title: str, header: Sequence[str]) -> _Sink:
        """A sheet whose header row is bold, frozen and filtered, with readable widths."""
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment, Font
        from openpyxl.utils import get_column_letter

        ws = self.book.create_sheet(title=title)
        for i, name in enumerate(header, start=1):
            width = 60 if name in _WIDE else max(12, len(name) + 3)
            ws.column_dimensions[get_column_letter(i)].width = width
        ws.freeze_panes = "A2"
        bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")
        cells = []
        for name in header:
            cell = WriteOnlyCell(ws, value=name)
            cell.font, cell.alignment = bold, wrap
            cells.append(cell)
        ws.append(cells)
        return _XlsxSheet(ws, len(header))

    def close(self) -> None:
        with self.tmp.open("wb") as fh:
            self.book.save(fh)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)


class _XlsxSheet(_Sink):
    def __init__(self, ws: Any, columns: int) -> None:
        self.ws = ws
        self.columns = columns
        self.rows = 1

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        for row in rows:
            self.ws.append([_xlsx_cell(v) for v in row])
        self.rows += len(rows)

    def close(self) -> None:
        from openpyxl.utils import get_column_letter

        self.ws.auto_filter.ref = f"A1:{get_column_letter(self.columns)}{self.rows}"


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class _Labels:
    grades: dict[str, str]
    domains: dict[str, str]

    @classmethod
    def of(cls, framework: Framework | None) -> _Labels:
        if framework is None:
            return cls({}, {})
        domains: dict[str, str] = {}
        for tool in framework.tools.values():
            for d in tool.domains:
                domains.setdefault(d.key, d.title)
        return cls({g.key: g.label for g in framework.grades}, domains)


def _ceil_month(day: date) -> str:
    """The first whole month from ``day`` on, as ``Audit.month`` holds it."""
    return month_key(day if day.day == 1 else shift_month(day, 1))


def _month_filter(stmt: Select[Any], since: date | None, until: date | None) -> Select[Any]:
    if since is not None:
        stmt = stmt.where(Audit.month >= _ceil_month(since))
    if until is not None:
        stmt = stmt.where(Audit.month < _ceil_month(until))
    return stmt


def _audit_rows(labels: _Labels) -> tuple[Select[Any], Any, Callable[[Any], tuple[Any, ...]]]:
    stmt = select(
        Audit.id, Audit.case_ref, Audit.month, Team.name, Audit.area, Audit.tool, Audit.reason,
        Audit.auditor_id, Audit.status, Audit.allocated_at, Audit.deadline, Audit.submitted_at,
        Audit.overall_grade, Audit.outcomes, Audit.safeguarding_concern, Audit.answers,
        final_overall_grade(Audit),
    ).join(Team, Team.id == Audit.team_id)

    def shape(r: Any) -> tuple[Any, ...]:
        grade, final = r[12], r[16]
        answers = r[15] if isinstance(r[15], dict) else {}
        findings = tuple(_answer(answers.get(key)) for _, key in FINDINGS)
        return (*r[:13], labels.grades.get(grade, grade) if grade else None, r[13], r[14],
                *findings, final, labels.grades.get(final, final) if final else None)

    return stmt, Audit.id, shape


def _domain_rows(labels: _Labels) -> tuple[Select[Any], Any, Callable[[Any], tuple[Any, ...]]]:
    final = final_domain_grades("export_final")
    stmt = (
        select(DomainGrade.id, Audit.id, Audit.case_ref, Audit.month, Team.name, Audit.area,
               DomainGrade.domain, DomainGrade.grade, final.c.grade)
        .join(Audit, Audit.id == DomainGrade.audit_id)
        .join(Team, Team.id == Audit.team_id)
        .join(final, and_(final.c.audit_id == DomainGrade.audit_id,
                          final.c.domain == DomainGrade.domain))
    )

    def shape(r: Any) -> tuple[Any, ...]:
        _, audit_id, ref, month, team, area, domain, grade, final_grade = r
        return (audit_id, ref, month, team, area, domain, labels.domains.get(domain, domain),
                grade, labels.grades.get(grade, grade), final_grade,
                labels.grades.get(final_grade, final_grade))

    return stmt, DomainGrade.id, shape


def _moderation_rows(_labels: _Labels) -> tuple[Select[Any], Any,
                                                 Callable[[Any], tuple[Any, ...]]]:
    m = Moderation
    stmt = (
        select(m.id, m.audit_id, Audit.case_ref, Audit.month, Team.name, m.round,
               m.moderator_id, m.status, m.allocated_at, m.due_on, m.decided_at, m.decided_by,
               m.auditor_overall, m.overall_grade, m.reason)
        .join(Audit, Audit.id == m.audit_id)
        .join(Team, Team.id == Audit.team_id)
    )
    return stmt, m.id, tuple


def _answer(value: Any) -> Any:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _action_rows(_labels: _Labels) -> tuple[Select[Any], Any, Callable[[Any], tuple[Any, ...]]]:
    a = AuditAction
    stmt = (
        select(a.id, a.audit_id, Audit.case_ref, Audit.month, Team.name, a.seq, a.what,
               a.owner_id, a.due_on, a.priority, a.status, a.created_at, a.done_at,
               a.done_by, a.done_note, a.first_due_on, a.asked_due_on, a.asked_reason,
               a.decided_by)
        .join(Audit, Audit.id == a.audit_id)
        .join(Team, Team.id == Audit.team_id)
    )
    return stmt, a.id, tuple


def _part_b_rows(_labels: _Labels) -> tuple[Select[Any], Any, Callable[[Any], tuple[Any, ...]]]:
    p = PartB
    stmt = (
        select(p.id, p.audit_id, Audit.case_ref, Audit.month, Team.name, p.staff_id, p.relation,
               p.status, p.due_on, p.agrees, p.disagree_reason, p.reflections, p.discussed_on,
               p.submitted_at)
        .join(Audit, Audit.id == p.audit_id)
        .join(Team, Team.id == Audit.team_id)
    )
    return stmt, p.id, tuple


_TABLES: Final = (
    ("audits", AUDIT_COLUMNS, _audit_rows),
    ("domain_grades", DOMAIN_COLUMNS, _domain_rows),
    ("actions", ACTION_COLUMNS, _action_rows),
    ("part_b", PART_B_COLUMNS, _part_b_rows),
    ("moderations", MODERATION_COLUMNS, _moderation_rows),
)


async def _calibration(sessions: async_sessionmaker[AsyncSession], labels: _Labels,
                       framework: Framework | None, since: date | None,
                       until: date | None) -> list[tuple[Any, ...]]:
    """Per auditor and domain (and overall): the calibration the QA team's ``calibration``
    shows, over the moderated audits of the exported months."""
    ranks = {g.key: g.rank for g in framework.grades} if framework is not None else {}
    async with sessions() as session:
        rows = await calibration(session, ranks, audit_months=(
            _ceil_month(since) if since else None, _ceil_month(until) if until else None))
        names = dict((await session.execute(
            select(Staff.staff_id, Staff.name)
            .where(Staff.staff_id.in_({c.auditor_id for c in rows})))).all())
    return [(c.auditor_id, names.get(c.auditor_id, c.auditor_id), c.domain,
             "Overall" if c.domain == OVERALL else labels.domains.get(c.domain, c.domain),
             c.audits, c.grades, c.agreed, round(c.agreement, 3), c.higher, c.lower, c.tendency,
             c.enough) for c in rows]


async def _copy(sessions: async_sessionmaker[AsyncSession], stmt: Select[Any], key: Any,
                shape: Callable[[Any], tuple[Any, ...]], sink: _Sink, batch: int) -> int:
    """Keyset-paged copy of one query into a sink; returns the rows written."""
    last: int | None = None
    written = 0
    while True:
        page = stmt.order_by(key).limit(batch)
        if last is not None:
            page = page.where(key > last)
        async with sessions() as session:
            rows = (await session.execute(page)).all()
        if not rows:
            return written
        last = rows[-1][0]
        await asyncio.to_thread(sink.write, [shape(r) for r in rows])
        written += len(rows)
        if len(rows) < batch:
            return written


async def export(
    sessions: async_sessionmaker[AsyncSession],
    out_dir: Path | str,
    *,
    since: date | None = None,
    until: date | None = None,
    fmt: str = "csv",
    framework: Framework | None = None,
    batch: int = BATCH,
) -> dict[str, Path]:
    """Write every table; returns {table name: path} (audits, domain_grades, actions, part_b,
    moderations, calibration).

    ``since`` (inclusive) and ``until`` (exclusive) select audits by their allocation month
    (a month counts when its first day is in range: 2025-04-01 to 2026-04-01 is a financial
    year); grades and actions follow their audit. With ``fmt="xlsx"`` the three tables are
    sheets of one workbook, and every key maps to it. ``framework`` supplies grade and domain
    labels (keys are written alone without it).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    labels = _Labels.of(framework)
    paths: dict[str, Path] = {}
    book: _XlsxBook | None = None
    if fmt == "xlsx":
        book = await asyncio.to_thread(_XlsxBook, out / "audit_export.xlsx")
    for name, header, build in _TABLES:
        stmt, key, shape = build(labels)
        stmt = _month_filter(stmt, since, until)
        if book is not None:
            sink = book.sheet(name, header)
            paths[name] = book.path
        else:
            sink = await asyncio.to_thread(_CsvSink, out / f"{name}.csv", header)
            paths[name] = out / f"{name}.csv"
        try:
            await _copy(sessions, stmt, key, shape, sink, batch)
        except BaseException:
            await asyncio.to_thread(book.abort if book is not None else sink.abort)
            raise
        await asyncio.to_thread(sink.close)
    rows = await _calibration(sessions, labels, framework, since, until)
    if book is not None:
        sink = book.sheet("calibration", CALIBRATION_COLUMNS)
        paths["calibration"] = book.path
    else:
        sink = await asyncio.to_thread(_CsvSink, out / "calibration.csv", CALIBRATION_COLUMNS)
        paths["calibration"] = out / "calibration.csv"
    await asyncio.to_thread(sink.write, rows)
    await asyncio.to_thread(sink.close)
    if book is not None:
        await asyncio.to_thread(book.close)
    return paths
