"""The monthly QA report for the performance board, as a Word document (SPEC R12).

Bedford's monthly report contents and Lambeth's narrative: headline figures, charts (as
images), tables per team and area, domains, themes, celebrations, actions and re-audits,
and each thematic audit. It renders the same :class:`~qa.digest.DigestView` as the channel
card, so its numbers are the digest's, small numbers protected the same way: a board paper
travels, so it names no case, child or member of staff.

Pure: the document is built in memory (python-docx, matplotlib with its file-less Agg
backend) and returned as bytes; the flow writes the file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Final

from cards.digest import FOOTNOTE, figure, percent, points
from qa.digest import DigestView, DistributionView, UnitRow

__all__ = ["SECTIONS", "report_docx"]

#: The report's sections, in order (a test checks the document has each heading).
SECTIONS: Final = (
    "Headline figures", "Audit completion", "Grades", "Domains", "Themes",
    "Outstanding practice to celebrate", "Actions", "Re-audits", "Thematic audits",
    "Escalations", "Moderation", "About these figures",
)
_COLOURS: Final = ("#2e7d32", "#1565c0", "#ef6c00", "#c62828", "#6a1b9a", "#00838f")


def _chart_png(view: DigestView) -> bytes | None:
    """Grade distribution this period and last, as bars; only from shown counts."""
    g = view.grades
    if not g.chartable:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure as MplFigure

    periods = [(view.label, [r.count.value for r in g.rows], g.total.value)]
    if g.previous_chartable:
        periods.append((view.previous_label, [r.previous.value for r in g.rows],
                        g.previous_total.value))
    fig = MplFigure(figsize=(6.5, 1.2 + 0.6 * len(periods)), dpi=150)
    ax = fig.add_subplot()
    for y, (_label, counts, total) in enumerate(periods):
        left = 0.0
        for i, (row, n) in enumerate(zip(g.rows, counts, strict=True)):
            width = 100.0 * n / total
            ax.barh(y, width, left=left, color=_COLOURS[i % len(_COLOURS)],
                    label=row.label if y == 0 else None)
            left += width
    ax.set_yticks(range(len(periods)), [p[0] for p in periods])
    ax.set_xlim(0, 100)
    ax.set_xlabel("Share of audits graded (%)")
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=len(g.rows), frameon=False,
              fontsize="small")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _table(doc: object, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = doc.add_table(rows=1, cols=len(header))  # type: ignore[attr-defined]
    table.style = "Light Grid Accent 1"
    for cell, text in zip(table.rows[0].cells, header, strict=True):
        cell.text = text
        for run in cell.paragraphs[0].runs:
            run.bold = True
    for row in rows:
        cells = table.add_row().cells
        for cell, text in zip(cells, row, strict=True):
            cell.text = text


def _units(rows: Sequence[UnitRow]) -> list[tuple[str, str, str, str]]:
    return [(r.label, figure(r.allocated), figure(r.completed), percent(r.rate)) for r in rows]


def _grades(d: DistributionView, previous: str) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    return (("Grade", "Count", "Share", previous, "Change"),
            [(r.label, figure(r.count), percent(r.share), figure(r.previous), points(r.change))
             for r in d.rows])


def report_docx(view: DigestView) -> bytes:
    """The board report for one month or quarter, as .docx bytes."""
    from docx import Document
    from docx.shared import Inches

    doc = Document()
    doc.core_properties.title = f"{view.authority}: case audit report, {view.label}"
    doc.add_heading(f"Case audit report: {view.label}", level=0)
    doc.add_paragraph(view.authority)
    if not view.complete:
        doc.add_paragraph(f"The {view.kind} is not over: these are the figures so far, as of "
                          f"{view.as_of[:10]}.")
    g, a = view.grades, view.actions

    doc.add_heading(SECTIONS[0], level=1)
    _table(doc, ("Measure", "Figure"), [
        ("Audits allocated (monthly sample)", figure(view.allocated)),
        ("Audits completed", figure(view.completed)),
        ("Completion", percent(view.completion_rate)),
        ("Audits graded", figure(g.total)),
        ("Good or better", percent(g.good_or_better)),
        (f"Change in good or better on {view.previous_label}",
         "no audits to compare with" if g.previous_empty else points(g.good_or_better_change)),
        ("Actions overdue", figure(a.overdue)),
        ("Serious safeguarding concerns raised", figure(view.safeguarding)),
    ])

    doc.add_heading(SECTIONS[1], level=1)
    doc.add_paragraph("By the case's team: audits of each team's cases (the team holding the "
                      "case when it was allocated).")
    _table(doc, ("Team", "Allocated", "Completed", "Done"), _units(view.teams))
    doc.add_paragraph("By the auditor's team: who does the audits, so who is behind.")
    _table(doc, ("Team", "Allocated", "Completed", "Done"), _units(view.auditor_teams))
    doc.add_paragraph("By area of planning.")
    _table(doc, ("Area", "Allocated", "Completed", "Done"), _units(view.areas))

    doc.add_heading(SECTIONS[2], level=1)
    chart = _chart_png(view)
    if chart is not None:
        doc.add_picture(io.BytesIO(chart), width=Inches(6.3))
    else:
        doc.add_paragraph("No chart: some counts are too small to draw without revealing them.")
    header, rows = _grades(g, view.previous_label)
    _table(doc, header, rows)

    doc.add_heading(SECTIONS[3], level=1)
    _table(doc, ("Domain", "Graded", "Good or better", "Change"),
           [(d.label, figure(d.distribution.total), percent(d.distribution.good_or_better),
             points(d.distribution.good_or_better_change)) for d in view.domains])

    doc.add_heading(SECTIONS[4], level=1)
    doc.add_paragraph("Cases whose worries or \"what needs to be better\" raise each theme.")
    _table(doc, ("Theme", f"This {view.kind}", view.previous_label),
           [(t.label, figure(t.count), figure(t.previous)) for t in view.themes])
    doc.add_paragraph("Emerging phrases: " + ("; ".join(view.emerging) or "none this time."))

    doc.add_heading(SECTIONS[5], level=1)
    doc.add_paragraph(f"{figure(view.celebrate)} audits recorded outstanding practice.")
    _table(doc, ("Team (the case's)", "Audits"),
           [(team, figure(n)) for team, n in view.celebrate_by_team])

    doc.add_heading(SECTIONS[6], level=1)
    _table(doc, ("Actions", "Figure"), [
        (f"Raised in the {view.kind}", figure(a.raised)),
        ("Done on time", figure(a.done_on_time)),
        ("Done late", figure(a.done_late)),
        ("Overdue", figure(a.overdue)),
        ("Open, not yet due", figure(a.not_yet_due)),
    ])

    doc.add_heading(SECTIONS[7], level=1)
    _table(doc, ("Last graded", "Within", "Overdue", f"Due next {view.kind}"),
           [(r.label, f"{r.months} months", figure(r.overdue), figure(r.due_next))
            for r in view.reaudits])

    doc.add_heading(SECTIONS[8], level=1)
    if not view.thematic:
        doc.add_paragraph(f"No thematic audit ran in this {view.kind}.")
    for run in view.thematic:
        doc.add_heading(f"{run.theme} (launched {run.month})", level=2)
        doc.add_paragraph(f"Allocated {figure(run.allocated)}, completed "
                          f"{figure(run.completed)}.")
        header, rows = _grades(run.grades, "Earlier")
        _table(doc, header[:3], [r[:3] for r in rows])

    doc.add_heading(SECTIONS[9], level=1)
    doc.add_paragraph(f"Open at the end of the {view.kind}.")
    if view.escalations is not None:
        e = view.escalations
        _table(doc, ("Escalations", "Figure"), [
            ("Cases tracked to Good (remedial plan open)", figure(e.tracked)),
            ("Remedial plans past due", figure(e.plans_overdue)),
            ("Actions escalated past their owner", figure(e.actions_escalated)),
            ("Safeguarding alerts not acknowledged", figure(e.alerts_unacknowledged)),
        ])

    doc.add_heading(SECTIONS[10], level=1)
    if view.moderation is not None:
        m = view.moderation
        doc.add_paragraph(f"Agreement with the auditor's grade: {percent(m.agreement)}.")
        _table(doc, ("Moderation", "Figure"), [
            (f"Moderated in the {view.kind}", figure(m.decided)),
            ("Agreed with the auditor", figure(m.agreed)),
            ("Regraded (the moderator's grade is final)", figure(m.regraded)),
            ("Returned for rework", figure(m.returned)),
            ("Waiting for a moderator", figure(m.waiting)),
        ])

    doc.add_heading(SECTIONS[11], level=1)
    doc.add_paragraph(FOOTNOTE)
    doc.add_paragraph("The monthly sample is the monthly allocation's audits (random and "
                      "re-audits); thematic audits are reported apart. Grades are final "
                      "grades: a moderator's where a moderator regraded the audit.")
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
