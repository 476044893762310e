"""Issue 10: the digest in a channel, themes, thematic audits, the board report, records.

The year-of-data tests generate a council (bench/bigdata.py: 12 teams, 150 staff, 2,000
cases, monthly allocations with realistic grades and actions, plus a thematic audit) and
check every digest figure against an independent count made in Python from the rows.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bench.bigdata import generate
from cards.common import TEAMS_CARD_BYTES, teams_findings
from cards.digest import digest_card, digest_text
from cards.report import SECTIONS, report_docx
from qa.digest import channel_view
from qa.disclosure import Figure, Protector, State, share
from qa.framework import Framework
from qa.framework_file import DEFAULT_THEMES, bundled_framework_path, load_framework
from qa.periods import Period, add_months, local_date, local_midnight_utc
from qa.themes import theme_text, themes_raised
from reports.digest import compute_digest
from store.models import (
    AllocationRun,
    Audit,
    AuditAction,
    Case,
    DomainGrade,
    Moderation,
    ModerationDomain,
    Remedial,
    SafeguardingAlert,
    Staff,
    Team,
)
from tests.channel_scan import Known, problems_in

LONDON = ZoneInfo("Europe/London")

# --------------------------------------------------------------------------- pure rules


def test_small_counts_are_hidden_and_cannot_be_worked_out_from_a_total() -> None:
    p = Protector()
    for k, v in (("total", 40), ("a", 20), ("b", 12), ("c", 5), ("d", 3)):
        p.add(k, v)
    p.total("total", ["a", "b", "c", "d"])
    f = p.protect()
    assert f["d"].state is State.SMALL
    assert f["c"].state is State.WITHHELD  # else d = 40 - 20 - 12 - 5
    assert f["a"].shown and f["b"].shown and f["total"].shown
    # two small cells whose sum is small: one more is withheld
    p = Protector()
    for k, v in (("t", 40), ("good", 38), ("ri", 1), ("inad", 1), ("out", 0)):
        p.add(k, v)
    p.total("t", ["out", "good", "ri", "inad"])
    f = p.protect()
    assert f["good"].state is State.WITHHELD and f["out"].shown
    assert share(f["good"], f["t"]) is None  # 95% would give back the 2 below good
    assert share(Figure(10), Figure(40)) == 25.0 and share(Figure(0), Figure(0)) is None


def test_themes_match_whole_words_with_common_endings() -> None:
    themes = DEFAULT_THEMES
    assert themes_raised("Drift and delays in planning", themes) >= {"drift_and_delay",
                                                                    "planning"}
    assert "drift_and_delay" not in themes_raised("a relay of notes", themes)
    assert themes_raised("Child’s voice not heard", themes) == {"childs_voice"}
    assert theme_text({"worries": " x ", "better": "y", "strengths": "z"}) == "x\ny"


def test_the_reference_framework_file_lists_exactly_the_default_themes() -> None:
    lambeth = load_framework(bundled_framework_path("lambeth_like"))
    bedford = load_framework(bundled_framework_path("bedford_like"))
    assert lambeth.themes == DEFAULT_THEMES == bedford.themes
    assert bedford.retention.closed_case_years == 6 and lambeth.retention.closed_case_years == 7


def test_a_bad_theme_is_refused_with_its_line() -> None:
    from qa.framework_file import FrameworkError, parse_framework

    text = bundled_framework_path("bedford_like").read_text() + (
        '\n[themes.neglect]\nlabel = "Neglect"\nkeywords = []\n')
    with pytest.raises(FrameworkError) as err:
        parse_framework(text, "x.toml")
    assert "themes.neglect.keywords" in str(err.value) and err.value.line is not None


# --------------------------------------------------------------------------- a year of data


@pytest.fixture
async def year(ctx: Any) -> Any:
    """A year ending 2026-10 at 2,000 cases, plus a thematic audit in September."""
    await generate(ctx.engine, years=1, scale=0.5, framework=ctx.framework)
    async with ctx.sessions.begin() as s:
        run = AllocationRun(key="thematic:2026-09:domestic-abuse", kind="thematic",
                            month="2026-09", theme="Domestic abuse", seed=7,
                            created_by="test", deadline=date(2026, 10, 1),
                            created_at=datetime(2026, 9, 10, 9, tzinfo=UTC))
        s.add(run)
        await s.flush()
        refs = (await s.scalars(select(Case.case_ref).where(Case.status == "open")
                                .order_by(Case.case_ref).limit(12))).all()
        auditor = (await s.scalars(select(Staff.staff_id).order_by(Staff.staff_id))).first()
        for i, ref in enumerate(refs):
            done = i < 9
            s.add(Audit(run_id=run.id, case_ref=ref, auditor_id=auditor, team_id=1,
                        area="early_help", tool="case_audit", month="2026-09",
                        reason="thematic", status="submitted" if done else "allocated",
                        allocated_at=datetime(2026, 9, 10, 9, tzinfo=UTC),
                        deadline=date(2026, 10, 1), look_back_from=date(2026, 3, 1),
                        look_back_to=date(2026, 9, 1),
                        submitted_at=datetime(2026, 9, 20, 10, tzinfo=UTC) if done else None,
                        overall_grade=("good" if i < 6 else "requires_improvement")
                        if done else None,
                        answers={"worries": "Domestic abuse not in the plan"} if done else None))
        # Escalations: remedial plans in every state, alerts acknowledged or not.
        poor = (await s.scalars(select(Audit).where(Audit.overall_grade == "inadequate",
                                                    Audit.month.in_(["2026-07", "2026-08"]))
                                .order_by(Audit.id).limit(12))).all()
        for i, a in enumerate(poor):
            raised = a.submitted_at
            s.add(Remedial(audit_id=a.id, case_ref=a.case_ref, grade="inadequate",
                           created_at=raised, due_on=raised.date() + timedelta(days=7),
                           plan="Weekly review." if i % 3 == 0 else None,
                           plan_at=raised + timedelta(days=3) if i % 3 == 0 else None,
                           closed_at=raised + timedelta(days=40) if i % 4 == 0 else None))
            s.add(SafeguardingAlert(audit_id=a.id, case_ref=a.case_ref, raised_by=a.auditor_id,
                                    raised_at=raised, rung=0, rung_at=raised,
                                    acknowledged_by=a.auditor_id if i % 2 else None,
                                    acknowledged_at=raised + timedelta(days=i) if i % 2
                                    else None))
    return ctx


def _independent(rows: dict[str, list[Any]], fw: Framework, period: Period,
                 as_of: datetime | None = None) -> dict[str, Any]:
    """The digest's figures counted in Python from every row (no SQL aggregation)."""
    zone = fw.zone
    start = local_midnight_utc(period.start, zone)
    end = local_midnight_utc(period.end, zone)
    end_day = period.end
    if as_of is not None and as_of < end:
        end, end_day = as_of, local_date(as_of, zone)
    prev_start = local_midnight_utc(period.previous().start, zone)
    team = {t.id: t.name for t in rows["teams"]}
    staff_team = {s.staff_id: team.get(s.team_id, "No team") for s in rows["staff"]}
    live = [a for a in rows["audits"] if a.status not in ("cancelled", "withdrawn")]
    sample = [a for a in live if a.reason != "thematic"]
    done = lambda a: a.submitted_at is not None and a.submitted_at < end  # noqa: E731
    allocated = [a for a in sample if a.month in period.month_keys]
    out: dict[str, Any] = {
        "allocated": len(allocated), "completed": sum(done(a) for a in allocated),
        "teams": Counter(), "auditor_teams": Counter(), "areas": Counter()}
    for a in allocated:
        for key, unit in (("teams", team[a.team_id]), ("auditor_teams", staff_team[a.auditor_id]),
                          ("areas", a.area)):
            out[key][(unit, "a")] += 1
            out[key][(unit, "c")] += done(a)
    cur = [a for a in sample if done(a) and a.submitted_at >= start]
    prev = [a for a in sample if done(a) and prev_start <= a.submitted_at < start]
    # Final grades: a moderator's regrade replaces the auditor's (overall and per domain).
    regraded = {m.id: m for m in rows["moderations"] if m.status == "regraded"}
    final = {m.audit_id: m.overall_grade for m in regraded.values()}
    final_domain = {(regraded[d.moderation_id].audit_id, d.domain): d.moderator_grade
                    for d in rows["moderation_domains"] if d.moderation_id in regraded}
    grade_of = lambda a: final.get(a.id, a.overall_grade)  # noqa: E731
    out["grades"] = Counter(grade_of(a) for a in cur)
    out["previous_grades"] = Counter(grade_of(a) for a in prev)
    ids = {a.id for a in cur}
    out["domains"] = Counter((g.domain, final_domain.get((g.audit_id, g.domain), g.grade))
                             for g in rows["domain_grades"] if g.audit_id in ids)
    decided = Counter(m.status for m in rows["moderations"]
                      if m.decided_at is not None and start <= m.decided_at < end)
    out["moderation"] = {
        "agreed": decided["agreed"], "regraded": decided["regraded"],
        "returned": decided["returned"],
        "waiting": sum(m.allocated_at < end and (m.decided_at is None or m.decided_at >= end)
                       for m in rows["moderations"])}
    open_plans = [r for r in rows["remedial"]
                  if r.created_at < end and (r.closed_at is None or r.closed_at >= end)]
    out["escalations"] = {
        "tracked": len({r.case_ref for r in open_plans}),
        "plans_overdue": sum(r.due_on < end_day and (r.plan_at is None or r.plan_at >= end)
                             for r in open_plans),
        "alerts": sum(x.raised_at < end and (x.acknowledged_at is None
                                              or x.acknowledged_at >= end)
                      for x in rows["alerts"])}
    submitted_all = [a for a in live if done(a) and a.submitted_at >= start]
    out["celebrate"] = Counter(team[a.team_id] for a in submitted_all
                               if (a.answers or {}).get("celebrate", "").strip())
    out["safeguarding"] = sum(bool(a.safeguarding_concern) for a in submitted_all)
    acts = [x for x in rows["actions"] if x.status not in ("cancelled", "withdrawn")]
    open_ = [x for x in acts if x.created_at < end and (x.done_at is None or x.done_at >= end)]
    done_in = [x for x in acts if x.done_at is not None and start <= x.done_at < end]
    past = end_day - timedelta(days=fw.escalation.step_days)
    out["escalations"]["actions"] = sum(x.due_on < past for x in open_)
    out["actions"] = {
        "raised": sum(start <= x.created_at < end for x in acts),
        "open": len(open_), "overdue": sum(x.due_on < end_day for x in open_),
        "on_time": sum(x.done_at.astimezone(UTC).date() <= x.due_on for x in done_in),
        "late": sum(x.done_at.astimezone(UTC).date() > x.due_on for x in done_in)}
    latest: dict[str, Any] = {}
    for a in sorted((a for a in rows["audits"] if done(a)
                     and a.status not in ("cancelled", "withdrawn", "returned")),
                    key=lambda a: a.submitted_at):
        latest[a.case_ref] = a
    closed = {c.case_ref: c.closed_on for c in rows["cases"]}
    reaudit: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for ref, a in latest.items():
        g = grade_of(a)
        months = fw.reaudit_months.get(g)
        if months is None or (closed[ref] is not None and closed[ref] < end_day):
            continue
        due = add_months(local_date(a.submitted_at, zone), months)
        reaudit[g][0] += 1
        reaudit[g][1] += due < end_day
        reaudit[g][2] += end_day <= due < period.next().end
    out["reaudits"] = {g: tuple(v) for g, v in reaudit.items()}
    out["themes"] = Counter()
    by_case: dict[str, str] = defaultdict(str)
    for a in submitted_all:
        by_case[a.case_ref] += "\n" + theme_text(a.answers)
    for text in by_case.values():
        out["themes"].update(themes_raised(text, fw.themes))
    return out


async def _rows(ctx: Any) -> dict[str, list[Any]]:
    async with ctx.sessions() as s:
        return {name: list((await s.scalars(select(model))).all()) for name, model in (
            ("audits", Audit), ("actions", AuditAction), ("domain_grades", DomainGrade),
            ("cases", Case), ("teams", Team), ("staff", Staff), ("moderations", Moderation),
            ("moderation_domains", ModerationDomain), ("remedial", Remedial),
            ("alerts", SafeguardingAlert))}


@pytest.mark.parametrize("key", ["2026-09", "2026-Q3"])
async def test_every_digest_figure_matches_an_independent_count(year: Any, key: str) -> None:
    fw, period = year.framework, Period.parse(key)
    d = await compute_digest(year.sessions, fw, period)
    want = _independent(await _rows(year), fw, period)
    assert d.allocated > 100 and (d.allocated, d.completed) == (want["allocated"],
                                                                want["completed"])
    for name in ("teams", "auditor_teams", "areas"):
        got = Counter()
        for u in getattr(d, name):
            got[(u.key, "a")] += u.allocated
            got[(u.key, "c")] += u.completed
        assert +got == +want[name], name
    assert {g.grade: g.count for g in d.grades.grades if g.count} == dict(want["grades"])
    assert {g.grade: g.previous for g in d.grades.grades if g.previous} == dict(
        want["previous_grades"])
    got_domains = Counter({(dd.domain, g.grade): g.count for dd in d.domains
                           for g in dd.distribution.grades if g.count})
    assert got_domains == want["domains"]
    assert dict(d.celebrate_by_team) == dict(want["celebrate"])
    assert d.safeguarding_concerns == want["safeguarding"]
    a = d.actions
    assert {"raised": a.raised, "open": a.open, "overdue": a.overdue,
            "on_time": a.done_on_time, "late": a.done_late} == want["actions"]
    assert {r.grade: (r.pending, r.overdue, r.due_next_period) for r in d.reaudits
            if r.pending} == want["reaudits"]
    assert {t.key: t.count for t in d.themes if t.count} == dict(want["themes"])
    m = d.moderation
    assert {"agreed": m.agreed, "regraded": m.regraded, "returned": m.returned,
            "waiting": m.waiting} == want["moderation"]
    assert m.agreed > 5 and m.regraded > 0  # the generated year moderates, and regrades
    e = d.escalations
    assert {"tracked": e.tracked, "plans_overdue": e.plans_overdue,
            "actions": e.actions_escalated, "alerts": e.alerts_unacknowledged} == want[
        "escalations"]
    assert e.tracked and e.plans_overdue and e.actions_escalated and e.alerts_unacknowledged
    [run] = d.thematic
    assert (run.theme, run.allocated, run.completed) == ("Domestic abuse", 12, 9)
    assert run.grades.counts()["good"] == 6
    # the channel card: valid, under the size limit, and nothing in it identifies a child
    view = channel_view(d, fw)
    card = digest_card(view)
    assert teams_findings(card) == []
    assert len(json.dumps(card, separators=(",", ":")).encode()) < TEAMS_CARD_BYTES
    async with year.sessions() as s:
        known = Known(set((await s.scalars(select(Case.case_ref))).all()),
                      set((await s.scalars(select(Staff.name))).all()),
                      set((await s.scalars(select(Team.name))).all()))
    activity = {"text": "", "attachments": [{"content": card}]}
    assert problems_in(activity, known) == []
    assert problems_in({"text": digest_text(view)}, known) == []
    assert any(el.get("type") == "Chart.HorizontalBar.Stacked" for el in card["body"])


async def test_a_period_still_running_counts_no_action_as_overdue_before_its_due_date(
        year: Any) -> None:
    fw, period = year.framework, Period.parse("2026-10")
    as_of = datetime(2026, 10, 14, 12, tzinfo=UTC)
    d = await compute_digest(year.sessions, fw, period, as_of=as_of)
    want = _independent(await _rows(year), fw, period, as_of=as_of)
    assert not d.complete
    assert (d.actions.open, d.actions.overdue) == (want["actions"]["open"],
                                                   want["actions"]["overdue"])
    async with year.sessions() as s:
        due_later = (await s.scalars(select(AuditAction).where(
            AuditAction.due_on >= date(2026, 10, 14), AuditAction.created_at < as_of,
            AuditAction.done_at.is_(None)))).all()
    assert due_later and d.actions.overdue <= d.actions.open - len(due_later)


async def test_no_change_is_shown_against_a_period_with_no_audits(year: Any) -> None:
    fw = year.framework
    d = await compute_digest(year.sessions, fw, "2025-11")  # the first month of the history
    assert d.previous_submitted == 0 and d.grades.good_or_better_change is None
    assert all(g.share_change is None for g in d.grades.grades)
    text = digest_text(channel_view(d, fw))
    assert "+100" not in text and "no audits graded in October 2025 to compare with" in text


async def test_the_board_report_has_the_digests_figures(year: Any, tmp_path: Path) -> None:
    from docx import Document

    fw = year.framework
    view = channel_view(await compute_digest(year.sessions, fw, "2026-09"), fw)
    path = tmp_path / "report.docx"
    path.write_bytes(report_docx(view))
    doc = Document(str(path))
    headings = [p.text for p in doc.paragraphs if p.style.name.startswith("Heading")]
    assert all(s in headings for s in SECTIONS)
    tables = [[[c.text for c in row.cells] for row in t.rows] for t in doc.tables]
    headline = dict(tables[0][1:])
    from cards.digest import figure, percent

    assert headline["Audits allocated (monthly sample)"] == figure(view.allocated)
    assert headline["Audits completed"] == figure(view.completed)
    assert headline["Good or better"] == percent(view.grades.good_or_better)
    assert headline["Actions overdue"] == figure(view.actions.overdue)
    teams = {r[0]: r[1:] for r in tables[1][1:]}
    for row in view.teams:
        assert teams[row.label] == [figure(row.allocated), figure(row.completed),
                                    percent(row.rate)]
    grade_rows = {r[0]: r[1] for r in tables[4][1:]}
    assert all(grade_rows[r.label] == figure(r.count) for r in view.grades.rows)
    with zipfile.ZipFile(path) as z:  # the chart is an image in the document
        assert any(n.startswith("word/media/") and n.endswith(".png") for n in z.namelist())
        xml = z.read("word/document.xml").decode()
    async with year.sessions() as s:
        refs = (await s.scalars(select(Case.case_ref))).all()
    assert not any(ref in xml for ref in refs)


# --------------------------------------------------------------------------- in Teams


async def _channel_setup(service: Any) -> tuple[Any, Any, Any]:
    from tests.fakes.activities import Team as FakeTeam
    from tests.fakes.activities import User

    lead, worker, director = (User.named("Quinn Lead"), User.named("Sam Worker"),
                              User.named("Dana Director"))
    team = FakeTeam.named("Leadership")
    async with service.ctx.sessions.begin() as s:
        t = Team(name="Alpha")
        s.add(t)
        await s.flush()
        for sid, user, roles in (("Q1", lead, ["qa_lead"]), ("W1", worker, ["social_worker"]),
                                 ("D1", director, ["director"])):
            s.add(Staff(staff_id=sid, name=user.name, email=user.email, roles=roles,
                        team_id=t.id, teams_user_id=user.id, aad_object_id=user.aad_object_id))
    return lead, worker, director, team  # type: ignore[return-value]


async def test_digests_here_registers_a_channel_and_the_job_posts_there(service: Any) -> None:
    from tests.fakes.activities import message

    fc = service.connector
    lead, worker, _director, team = await _channel_setup(service)
    channel = team.channels[0][0]

    def in_channel(user: Any, text: str) -> dict[str, Any]:
        return message(text, user=user, conversation_type="channel",
                       conversation_id=f"{channel};messageid=42", team=team,
                       service_url=fc.url)

    r = await service.post(in_channel(worker, "digests here"))
    assert r.status in (200, 201)
    await fc.wait_for(lambda f: len(f.texts()) >= 1, timeout=5)
    assert "for the QA team only" in fc.texts()[-1]
    r = await service.post(in_channel(lead, "digests here"))
    await fc.wait_for(lambda f: len(f.texts()) >= 2, timeout=5)
    assert "this channel now gets the leadership audit digest" in fc.texts()[-1]
    from store.models import DigestChannel

    async with service.ctx.sessions() as s:
        [row] = (await s.scalars(select(DigestChannel))).all()
    assert row.conversation_id == channel and row.registered_by == "Q1"
    # 5 November 2026 at 10:00: the October digest goes to the channel, once
    from scheduler.jobs import run_job

    at = datetime(2026, 11, 5, 10, 0, tzinfo=LONDON)
    assert "nothing to do yet" in await run_job(service.ctx, "digest", at - timedelta(hours=1))
    out = await run_job(service.ctx, "digest", at)
    assert "2026-10: 1 of 1 channel(s) queued" in out
    assert "0 of 1" in await run_job(service.ctx, "digest", at + timedelta(days=1))
    await fc.wait_for(lambda f: any(d.conversation_id == channel and d.activity.get(
        "attachments") for d in f.deliveries), timeout=10)
    posts = [d for d in fc.deliveries if d.conversation_id == channel
             and d.activity.get("attachments")]
    assert len(posts) == 1
    card = posts[0].activity["attachments"][0]["content"]
    assert card["body"][1]["text"] == "October 2026" and teams_findings(card) == []


async def test_details_go_one_to_one_to_leaders_only(service: Any) -> None:
    from tests.fakes.activities import card_action, personal_conversation_id

    fc = service.connector
    lead, worker, director, team = await _channel_setup(service)
    channel = team.channels[0][0]
    for user in (worker, director):
        r = await service.post(card_action("digest.details", {"period": "2026-10"}, user=user,
                                           conversation_type="channel",
                                           conversation_id=channel, team=team,
                                           service_url=fc.url))
        body = await r.json()
        assert body["value"]["body"][0]["text"].endswith("audit digest")  # the card stays
    await fc.wait_for(lambda f: len(f.deliveries) >= 2, timeout=10)
    to_director = fc.sent(personal_conversation_id(director))
    to_worker = fc.sent(personal_conversation_id(worker))
    assert to_director and "Digest details" in json.dumps(to_director[-1])
    assert to_worker and "only to leaders and the QA team" in to_worker[-1]["text"]
    assert not [d for d in fc.deliveries if d.conversation_id == channel]


# --------------------------------------------------------------------------- thematic, records


async def test_theme_launch_uses_the_allocation_rules(ctx: Any) -> None:
    from bench.datagen import generate as council
    from bench.datagen import load_council
    from flows.themes import Criteria, LaunchRefused, launch_theme

    c = council(3, n_staff=150, n_cases=2000)
    await load_council(ctx.sessions, c)
    at = datetime(2026, 3, 2, 9, tzinfo=LONDON)
    crit = Criteria("Domestic abuse", cases=20, tags=("domestic_abuse",),
                    areas=("help_and_protection",))
    preview = await launch_theme(ctx, crit, at=at, actor="test", dry_run=True, seed=5)
    done = await launch_theme(ctx, crit, at=at, actor="test", seed=5)
    assert preview.allocated == done.allocated and len(done.allocated) == 20
    again = await launch_theme(ctx, crit, at=at, actor="test", seed=5)
    assert again.status == "already"
    cases = {x.case_ref: x for x in c.cases}
    staff = {s.staff_id: s for s in c.staff}
    for ref, auditor, area in done.allocated:
        assert "domestic_abuse" in cases[ref].tags and area == "help_and_protection"
        assert staff[auditor].team != cases[ref].team and cases[ref].social_worker_id != auditor
    async with ctx.sessions() as s:
        audits = (await s.scalars(select(Audit))).all()
        run = (await s.scalars(select(AllocationRun))).one()
    assert {a.reason for a in audits} == {"thematic"} and run.kind == "thematic"
    assert run.theme == "Domestic abuse"
    with pytest.raises(LaunchRefused):
        await launch_theme(ctx, Criteria("x", cases=3, areas=("nowhere",)), at=at, actor="t")


async def test_purge_removes_closed_cases_past_retention_and_logs_counts_only(ctx: Any) -> None:
    from flows.records import purge_records, read_log
    from store.models import AuditLogEntry, OutboxMessage

    await generate(ctx.engine, years=1, scale=0.05, framework=ctx.framework)
    at = datetime(2034, 1, 10, 12, tzinfo=UTC)  # seven years on: every closed case goes
    async with ctx.sessions.begin() as s:
        closed = (await s.scalars(select(Case.case_ref).where(Case.status == "closed"))).all()
        open_refs = (await s.scalars(select(Case.case_ref).where(Case.status == "open"))).all()
        s.add(OutboxMessage(recipient="staff:x", activity={"text": "Case BC000001 findings"},
                            status="sent", sent_at=at - timedelta(days=30), dedupe_key="k1"))
        s.add(OutboxMessage(recipient="staff:x", activity={"text": "fresh"}, status="sent",
                            sent_at=at - timedelta(days=1), dedupe_key="k2"))
    assert closed and open_refs
    preview = await purge_records(ctx, at=at, actor="test", dry_run=True)
    assert preview.counts["cases"] == len(closed) and preview.counts["message_contents"] == 1
    async with ctx.sessions() as s:
        assert len((await s.scalars(select(Case))).all()) == len(closed) + len(open_refs)
    done = await purge_records(ctx, at=at, actor="test", dry_run=False)
    assert done.counts == preview.counts
    async with ctx.sessions() as s:
        assert set((await s.scalars(select(Case.case_ref))).all()) == set(open_refs)
        assert not (await s.scalars(select(Audit).where(Audit.case_ref.in_(closed[:500])))).all()
        msgs = {m.dedupe_key: m.activity for m in (await s.scalars(select(OutboxMessage))).all()}
        [entry] = (await s.scalars(select(AuditLogEntry).where(
            AuditLogEntry.action == "records.purged"))).all()
    assert msgs == {"k1": {"purged": True}, "k2": {"text": "fresh"}}
    assert entry.after["cases"] == len(closed) and "BC" not in json.dumps(entry.after)
    again = await purge_records(ctx, at=at, actor="test", dry_run=True)
    assert again.counts["cases"] == 0 and again.counts["message_contents"] == 0
    log = await read_log(ctx, since=at - timedelta(days=1))
    assert [e.action for e in log] == ["records.purged"]


async def test_log_by_case_and_by_staff(ctx: Any) -> None:
    from flows.records import log_line, read_log
    from store.audit_log import record

    async with ctx.sessions.begin() as s:
        t = Team(name="A")
        s.add(t)
        await s.flush()
        s.add(Case(case_ref="C-1", team_id=t.id, area="early_help", opened_on=date(2025, 1, 1)))
        s.add(Staff(staff_id="S1", name="Ann", email="a@x", roles=["iro"]))
        run = AllocationRun(key="k", kind="monthly", month="2026-01", seed=1, created_by="t",
                            deadline=date(2026, 2, 1))
        s.add(run)
        await s.flush()
        audit = Audit(run_id=run.id, case_ref="C-1", auditor_id="S1", team_id=t.id,
                      area="early_help", tool="case_audit", month="2026-01", reason="random",
                      deadline=date(2026, 2, 1), look_back_from=date(2025, 7, 1),
                      look_back_to=date(2026, 1, 1))
        s.add(audit)
        await s.flush()
        when = datetime(2026, 1, 5, 9, tzinfo=UTC)
        record(s, at=when, actor="S1", action="audit.submitted", entity="audit",
               entity_id=str(audit.id), after={"overall_grade": "good"})
        record(s, at=when, actor="S2", action="audit.delegated", entity="audit",
               entity_id="999")
    by_case = await read_log(ctx, since=datetime(2026, 1, 1, tzinfo=UTC), case_ref="C-1")
    by_staff = await read_log(ctx, since=datetime(2026, 1, 1, tzinfo=UTC), staff_id="S2")
    assert [e.action for e in by_case] == ["audit.submitted"]
    assert [e.entity_id for e in by_staff] == ["999"]
    assert "overall_grade=good" in log_line(by_case[0], ctx)


async def test_xlsx_export_has_findings_and_a_readable_header(ctx: Any, tmp_path: Path) -> None:
    import openpyxl

    from reports.export import AUDIT_COLUMNS, export

    await generate(ctx.engine, years=1, scale=0.02, framework=ctx.framework)
    paths = await export(ctx.sessions, tmp_path, fmt="xlsx", framework=ctx.framework)
    book = openpyxl.load_workbook(paths["audits"])
    ws = book["audits"]
    header = [c.value for c in ws[1]]
    assert header == list(AUDIT_COLUMNS)
    for col in ("strengths", "worries", "needs_to_be_better", "what_the_child_and_family_said"):
        assert col in header
    assert all(c.font.bold for c in ws[1])
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref.startswith("A1:")
    assert ws.column_dimensions["Q"].width >= 40  # strengths: wide enough to read
    worries = header.index("worries")
    assert any(row[worries] for row in ws.iter_rows(min_row=2, values_only=True))


def test_channel_scan_flags_what_it_should() -> None:
    known = Known({"C-000123"}, {"Ann Auditor"}, {"Team 1"})
    bad = {"text": "Ann Auditor graded it Good\nTeam 1: 3 audits\nsee C-000123"}
    found = problems_in(bad, known)
    assert len(found) == 4  # name next to a grade, a count of 3, the ref twice (known, shape)
    ok = {"text": "Team 1: fewer than 5 audits, 25% good, +3 pts, 1 April, 1:1, 8 months"}
    assert problems_in(ok, known) == []
    assert io  # keep the import used by helpers above
