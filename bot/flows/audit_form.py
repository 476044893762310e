"""The audit form flow (SPEC R5): open, save a draft, submit, and the delegate command.

Card actions answer with a card that replaces the clicked one in place (Action.Execute),
so every outcome here is a card: the form (with entries kept and errors by their fields),
the read-only summary, or a polite refusal. Domain errors are turned into refusal cards
here because an invoke answered with plain text would leave Teams showing an error.
Logs carry audit ids only, never entries or case details.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from functools import wraps
from typing import Any, Final

from bot.router import QA_TEAM, Request, Router, payload
from bot.turn import Reply
from cards.audit_form import (
    FormView,
    SummaryAction,
    SummaryView,
    audit_form_card,
    audit_summary_card,
    fmt_date,
    fmt_datetime,
    open_form_card,
    refusal_card,
)
from cards.payloads import OpenAudit, PayloadError, SaveDraft, SubmitAudit
from qa import form_rules as fr
from qa.framework import Framework, Tool
from qabot.context import AppContext
from store.audits import NOT_YOURS, AuditStore, Delegation, FormContext, SubmittedAudit
from store.errors import Conflict, StoreError

log = logging.getLogger(__name__)
router = Router()

_RELATIONS: Final = {
    "social_worker": "case social worker",
    "manager": "social worker's manager",
    "team_manager": "team manager",
}

CardHandler = Callable[[Request], Awaitable[Reply]]


def _store(ctx: AppContext) -> AuditStore:
    return AuditStore(ctx.sessions, qa_roles=ctx.framework.qa_roles)


def _today(ctx: AppContext) -> date:
    """Today in the framework's timezone: due dates are calendar dates there."""
    return ctx.clock().astimezone(ctx.framework.zone).date()


def _local(ctx: AppContext, moment: datetime) -> datetime:
    return moment.astimezone(ctx.framework.zone)


def _staff_id(request: Request) -> str | None:
    return request.staff.staff_id if request.staff is not None else None


def _tool(framework: Framework, fc: FormContext) -> Tool:
    """The tool the audit was allocated with; the area's tool if that one was removed."""
    tool = framework.tools.get(fc.audit.tool)
    if tool is not None:
        return tool
    try:
        return framework.tool_for_area(fc.audit.area)
    except KeyError:
        raise Conflict("This audit's form is no longer in the framework file; please tell "
                       "the QA team.") from None


def _area_label(framework: Framework, area: str) -> str:
    found = framework.areas.get(area)
    return found.label if found else area


def _card_action(handler: CardHandler) -> CardHandler:
    """Turn a bad button or a domain error into a refusal card; nothing has changed."""

    @wraps(handler)
    async def run(request: Request) -> Reply:
        try:
            return await handler(request)
        except PayloadError as err:
            log.info("card action refused: bad payload", extra={"verb": request.incoming.verb})
            return Reply(card=refusal_card(
                f"Sorry, that button did not work ({err}). Nothing was changed. Please open "
                "the audit again from your allocation message."))
        except StoreError as err:
            return Reply(card=refusal_card(str(err)))

    return run


# ---------------------------------------------------------------------------- views


def _owner_choices(fc: FormContext) -> tuple[tuple[str, str], ...]:
    return tuple((o.staff_id, f"{o.name} ({_RELATIONS.get(o.relation, o.relation)})")
                 for o in fc.owners)


def form_view(ctx: AppContext, fc: FormContext, values: dict[str, str], *,
              errors: dict[str, str] | None = None, note: str | None = None) -> FormView:
    framework = ctx.framework
    tool = _tool(framework, fc)
    audit = fc.audit
    return FormView(
        audit_id=audit.id,
        case_ref=audit.case_ref,
        area_label=_area_label(framework, audit.area),
        tool_label=tool.label,
        domains=tool.domains,
        grades=framework.grades,
        look_back_from=audit.look_back_from,
        look_back_to=audit.look_back_to,
        deadline=audit.deadline,
        owner_choices=_owner_choices(fc),
        values=values,
        errors=errors or {},
        note=note,
        max_actions=framework.max_actions,
        action_grades=tuple(g.label for g in framework.grades
                            if g.key in framework.actions_required),
    )


def summary_view(ctx: AppContext, done: SubmittedAudit) -> SummaryView:
    framework = ctx.framework
    audit = done.audit
    tool = framework.tools.get(audit.tool)
    titles = {d.key: d.title for d in tool.domains} if tool else {}
    order = list(titles) + [k for k in done.grades if k not in titles]

    def grade_label(key: str | None) -> str:
        try:
            return framework.grade(key or "").label
        except KeyError:
            return key or ""

    assert audit.submitted_at is not None
    return SummaryView(
        audit_id=audit.id,
        case_ref=audit.case_ref,
        area_label=_area_label(framework, audit.area),
        tool_label=tool.label if tool else audit.tool,
        domain_grades=tuple((titles.get(k, k), grade_label(done.grades[k]))
                            for k in order if k in done.grades),
        overall_label=grade_label(audit.overall_grade),
        outcomes_label=fr.label_for(fr.OUTCOME_CHOICES, audit.outcomes),
        actions=tuple(SummaryAction(what=a.what, owner_name=done.names.get(a.owner_id, a.owner_id),
                                    due_on=a.due_on,
                                    priority_label=fr.label_for(fr.PRIORITY_CHOICES, a.priority))
                      for a in done.actions),
        submitted_by=done.names.get(audit.submitted_by or "", audit.submitted_by or ""),
        submitted_at=_local(ctx, audit.submitted_at),
        safeguarding=audit.safeguarding_concern,
    )


async def _summary_reply(ctx: AppContext, audit_id: int) -> Reply:
    done = await _store(ctx).submitted(audit_id)
    return Reply(card=audit_summary_card(summary_view(ctx, done)))


async def _load(request: Request, audit_id: int) -> FormContext | Reply:
    """The form context if this person may act on the audit, else the card to answer with."""
    if request.staff is None:
        return Reply(card=refusal_card(
            "I do not recognise you as a member of staff, so I cannot open this audit. "
            "Nothing was changed."))
    fc = await _store(request.ctx).load_for_form(audit_id, _staff_id(request))
    if not fc.allowed:
        log.info("audit action refused: not the auditor or delegate",
                 extra={"audit_id": audit_id, "verb": request.incoming.verb})
        return Reply(card=refusal_card(NOT_YOURS))
    if fc.submitted:
        return await _summary_reply(request.ctx, audit_id)
    return fc


def _entries(ctx: AppContext, fc: FormContext, data: dict[str, Any]) -> dict[str, str]:
    tool = _tool(ctx.framework, fc)
    return fr.values_from(data, known=fr.input_ids(tool, ctx.framework.max_actions))


# ---------------------------------------------------------------------------- card actions


@router.verb(OpenAudit.verb)
@_card_action
async def open_audit(request: Request) -> Reply:
    """Show the form with any saved draft, or the summary once submitted."""
    ctx = request.ctx
    ask = OpenAudit.parse(payload(request))
    loaded = await _load(request, ask.audit_id)
    if isinstance(loaded, Reply):
        return loaded
    audit = loaded.audit
    note = None
    if audit.draft_saved_at is not None:
        note = (f"Draft saved {fmt_datetime(_local(ctx, audit.draft_saved_at))}: carry on "
                "where you left off.")
    values = {k: v for k, v in (audit.draft or {}).items() if isinstance(v, str)}
    return Reply(card=audit_form_card(form_view(ctx, loaded, values, note=note)))


@router.verb(SaveDraft.verb)
@_card_action
async def save_draft(request: Request) -> Reply:
    """Keep the entries as they are (unchecked) so the auditor can come back later."""
    ctx = request.ctx
    data = payload(request)
    ask = SaveDraft.parse(data)
    loaded = await _load(request, ask.audit_id)
    if isinstance(loaded, Reply):
        return loaded
    values = _entries(ctx, loaded, data)
    try:
        saved_at = await _store(ctx).save_draft(ask.audit_id, _staff_id(request), values)
    except Conflict:
        return await _summary_reply(ctx, ask.audit_id)  # submitted meanwhile
    log.info("audit draft saved", extra={"audit_id": ask.audit_id})
    note = (f"Draft saved {_local(ctx, saved_at):%H:%M}. You can close this and come back "
            f"to it before {fmt_date(loaded.audit.deadline)}.")
    return Reply(card=audit_form_card(form_view(ctx, loaded, values, note=note)))


@router.verb(SubmitAudit.verb)
@_card_action
async def submit_audit(request: Request) -> Reply:
    """Check the form; a valid one is recorded once and replaced by its summary."""
    ctx = request.ctx
    data = payload(request)
    ask = SubmitAudit.parse(data)
    loaded = await _load(request, ask.audit_id)
    if isinstance(loaded, Reply):
        return loaded
    values = _entries(ctx, loaded, data)
    submission, errors = fr.validate(values, tool=_tool(ctx.framework, loaded),
                                     framework=ctx.framework, today=_today(ctx),
                                     owner_ids=loaded.owner_ids)
    if submission is None:
        log.info("audit submit rejected", extra={"audit_id": ask.audit_id, "errors": len(errors)})
        return Reply(card=audit_form_card(form_view(ctx, loaded, values, errors=errors)))
    outcome = await _store(ctx).submit(ask.audit_id, _staff_id(request), submission)
    card = audit_summary_card(summary_view(ctx, outcome.result))
    if not outcome.created:
        log.info("audit submit replayed", extra={"audit_id": ask.audit_id})
        return Reply(card=card)
    log.info("audit submitted", extra={"audit_id": ask.audit_id,
                                       "actions": len(submission.actions)})
    first = (request.staff.name.split() or [""])[0] if request.staff else ""
    thanks = (f"Thank you{', ' + first if first else ''}. Your audit of case "
              f"{loaded.audit.case_ref} is submitted and recorded. If anything in it needs "
              "correcting now, please ask the QA team.")
    if submission.safeguarding:
        ctx.outbox_queued()
        thanks += (" I have sent the safeguarding concern to the case's team manager and "
                   "their manager now.")
    return Reply(card=card, messages=[thanks])


# ---------------------------------------------------------------------------- delegate

DELEGATE_USAGE: Final = "delegate CASE_REF to EMAIL"


def _delegation_messages(ctx: AppContext) -> Callable[[Delegation], Sequence[tuple[str, Any]]]:
    """The messages a delegation sends, built inside the store's transaction (pure)."""

    def compose(d: Delegation) -> list[tuple[str, Any]]:
        audit, case = d.audit, d.case
        area = _area_label(ctx.framework, audit.area)
        on_behalf = f" on behalf of {d.auditor.name}" if d.auditor else ""
        out: list[tuple[str, Any]] = [
            (d.delegate.staff_id,
             f"Hello {d.delegate.name}, the QA team has asked you to audit case "
             f"{case.case_ref}{on_behalf}. Please submit it by {fmt_date(audit.deadline)}."),
            (d.delegate.staff_id, open_form_card(case.case_ref, area, audit.deadline, audit.id)),
        ]
        if d.auditor is not None:
            out.append((d.auditor.staff_id,
                        f"The QA team has asked {d.delegate.name} to do the audit of case "
                        f"{case.case_ref} that was allocated to you. You can still open it."))
        return out

    return compose


@router.command("delegate", summary="let someone else do the open audit of a case",
                usage=DELEGATE_USAGE, roles=[QA_TEAM])
async def delegate_command(request: Request) -> Reply:
    """``delegate CASE_REF to EMAIL``: the named person may then open, save and submit."""
    ctx = request.ctx
    parts = request.args.split()
    if len(parts) != 3 or parts[1].lower() != "to" or "@" not in parts[2]:
        return Reply.text(f"Please write it as **{DELEGATE_USAGE}**, for example "
                          "**delegate C-1234 to sam.jones@council.example**.")
    case_ref, email = parts[0], parts[2]
    result = await _store(ctx).delegate(case_ref, email, _staff_id(request),
                                        compose=_delegation_messages(ctx))
    if not result.changed:
        return Reply.text(f"{result.delegate.name} can already do the audit of case {case_ref}.")
    ctx.outbox_queued()
    log.info("audit delegated", extra={"audit_id": result.audit.id})
    return Reply.text(f"Done: {result.delegate.name} can now open, save and submit the audit of "
                      f"case {case_ref} (due {fmt_date(result.audit.deadline)}). I have sent "
                      "them the form.")
