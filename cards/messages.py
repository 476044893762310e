"""Every plain-text sentence the bot says, in one place (cards are in the other modules here).

Pure functions and constants: no I/O, no SDK. A refusal raised anywhere as a
:class:`qa.errors.DomainError` code becomes its sentence here (:func:`error_text`), so the
wording of the whole bot can be read and reviewed in this folder. Texts carry case
references and names only where the message goes 1:1 to someone entitled to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from types import MappingProxyType
from typing import Final

from qa.allocation import (
    RULE_ALREADY_ALLOCATED,
    RULE_MANAGED_TEAMS,
    RULE_NO_AREA_COUNT,
    RULE_OWN_CASELOAD,
    RULE_OWN_TEAM,
    RULE_REPEAT_WINDOW,
    Exclusion,
)
from qa.errors import Code, DomainError

__all__ = [
    "ACTIONS_DUTY",
    "AUDITOR_DUTY",
    "CHANNEL_WELCOME",
    "DELEGATE_USAGE",
    "ERROR_TEXT",
    "MANAGER_DUTY",
    "NO_DUTY",
    "QA_DUTY",
    "SAFEGUARDING_DUTY",
    "error_text",
]

# ---------------------------------------------------------------------------- refusals

DELEGATE_USAGE: Final = "delegate CASE_REF to EMAIL"

#: One sentence per refusal code; ``{name}`` fields come from the error's params.
ERROR_TEXT: Final[Mapping[Code, str]] = MappingProxyType({
    Code.AUDIT_NOT_FOUND: ("I cannot find that audit. It may have been withdrawn; ask the QA "
                           "team if you think it should be there. Nothing was changed."),
    Code.AUDIT_CASE_MISSING: ("I cannot find the case for that audit; please tell the QA team. "
                              "Nothing was changed."),
    Code.AUDIT_NOT_YOURS: ("This audit is allocated to someone else, so only they (or a "
                           "delegate named by the QA team) can open, save or submit it. "
                           "Nothing was changed."),
    Code.AUDIT_NOT_STAFF: ("I do not recognise you as a member of staff, so I cannot open this "
                           "audit. Nothing was changed."),
    Code.AUDIT_NOT_SUBMITTED: "That audit has not been submitted.",
    Code.AUDIT_ALREADY_SUBMITTED: ("This audit has already been submitted, so the draft was not "
                                   "saved."),
    Code.AUDIT_TOOL_GONE: ("This audit's form is no longer in the framework file; please tell "
                           "the QA team. Nothing was changed."),
    Code.DELEGATE_USAGE: (f"Please write it as **{DELEGATE_USAGE}**, for example "
                          "**delegate C-1234 to sam.jones@council.example**."),
    Code.DELEGATE_QA_ONLY: "Only the QA team can name a delegate for an audit.",
    Code.DELEGATE_NO_OPEN_AUDIT: "Case {case_ref} has no audit waiting to be done.",
    Code.DELEGATE_IS_AUDITOR: "{name} is already the auditor for this case.",
    Code.DELEGATE_OWN_TEAM: ("{name} works on this case's team, and nobody audits their own "
                             "team's cases. Please name someone else."),
    Code.CASE_NOT_FOUND: "I cannot find case {case_ref}.",
    Code.STAFF_EMAIL_UNKNOWN: "No current member of staff has the email {email}.",
    Code.NOT_STAFF: ("I do not recognise you as a member of staff, so I cannot do that. "
                     "Nothing was changed."),
    Code.ACTION_NOT_FOUND: "I cannot find that action. Nothing was changed.",
    Code.ACTION_NOT_YOURS: ("Only the action's owner, their line of management or the QA team "
                            "can do that. Nothing was changed."),
    Code.EXTENSION_NOT_YOURS: ("Only the owner's line of management or the QA team can decide "
                               "on more time. Nothing was changed."),
    Code.EXTENSION_DATE: ("Please give a new due date after {due} and within a year. Nothing "
                          "was changed."),
    Code.EXTENSION_REASON: "Please say why more time is needed. Nothing was changed.",
    Code.PART_B_NOT_FOUND: ("I have no Part B waiting from you for that audit. Nothing was "
                            "changed."),
    Code.ALERT_NOT_FOUND: "I cannot find that safeguarding alert. Nothing was changed.",
    Code.ALERT_NOT_YOURS: ("Only the managers told about this concern, their line of "
                           "management or the QA team can acknowledge it. Nothing was changed."),
    Code.REMEDIAL_NOT_FOUND: "I cannot find that remedial plan. Nothing was changed.",
    Code.REMEDIAL_NOT_YOURS: ("Only the people asked for the remedial plan or the QA team can "
                              "record it. Nothing was changed."),
    Code.REMEDIAL_PLAN_EMPTY: "Please write the remedial plan before recording it.",
    Code.MODERATION_NOT_FOUND: "I cannot find that moderation. Nothing was changed.",
    Code.MODERATION_NOT_YOURS: ("Only the moderator this audit was given to can moderate it. "
                                "Nothing was changed."),
    Code.MODERATE_USAGE: "Please write it as: moderate CASE_REF (for example: moderate C-1234).",
    Code.MODERATE_NO_AUDIT: ("Case {case_ref} has no submitted audit to moderate (it may be "
                             "with its auditor, or returned for rework). Nothing was changed."),
    Code.MODERATE_DONE: ("The audit of case {case_ref} is already {state}. Nothing was "
                         "changed."),
    Code.MODERATE_NOT_INDEPENDENT: ("You cannot moderate the audit of case {case_ref}: you "
                                    "audited it, work in the case's team or manage it. Nothing "
                                    "was changed."),
    Code.BAD_PAYLOAD: ("Sorry, that button did not work ({problem}). Nothing was changed. "
                       "Please open it again from the message it came in."),
    Code.UNKNOWN_VERB: "That button is no longer supported. Type **help**.",
})


def error_text(error: DomainError) -> str:
    """The sentence for a refusal, filled in with the error's params."""
    return ERROR_TEXT[error.code].format(**error.params)


def payload_problem(field: str, missing: bool) -> str:
    """What is wrong with a button's packed data, for :data:`Code.BAD_PAYLOAD`."""
    if missing:
        return f"this button is missing {field!r}; open the card again"
    return f"this button has a bad {field!r}"


def turn_failed(reference: str) -> str:
    """Something broke on our side: never the exception, always the reference to quote."""
    return ("Sorry, something went wrong on our side and nothing was changed. If it keeps "
            f"happening, quote reference {reference or 'unknown'} to the QA team.")


def turn_broke(reference: str) -> str:
    """The Teams edge itself failed mid-turn: what happened is not known, so no promise."""
    return ("Sorry, something went wrong on our side. If it keeps happening, quote reference "
            f"{reference or 'unknown'} to the QA team.")


# ---------------------------------------------------------------------------- routing

UNKNOWN_COMMAND: Final = ("Sorry, I did not understand that. Type **help** to see what I can "
                          "do for you.")


def one_to_one_only(usage: str) -> str:
    return (f"Please message me 1:1 for **{usage}**: here I only ever post totals, never "
            "details of a case.")


def not_for_you(usage: str, who: str) -> str:
    return f"**{usage}** is for {who} only."


# ---------------------------------------------------------------------------- welcome, help

# What the bot sends a person today, by what they do. Derived from the framework (who
# audits, who is in the QA team, who is asked for remedial plans) and the line of
# management, so help never promises a message that is not sent.
AUDITOR_DUTY: Final = ("your monthly audit allocation ({n} a month) with the audit form, and "
                       "a reminder before the deadline")
FINDINGS_DUTY: Final = ("the findings of audits of cases you hold or manage, with your response "
                        "(Part B) to record on the card")
ACTIONS_DUTY: Final = ("a reminder before an action you own is due and a nudge when it is "
                       "overdue, with buttons to mark it done or ask for more time (never more "
                       "than one such message a day; **my actions** lists them)")
MANAGER_DUTY: Final = "a note when someone you manage has not submitted an audit by its deadline"
ESCALATION_DUTY: Final = ("overdue actions in the teams you manage as they climb the escalation "
                          "ladder, and requests for more time to approve or refuse")
SAFEGUARDING_DUTY: Final = ("at once, any serious safeguarding concern an auditor raises about a "
                            "case in a team you manage, to acknowledge")
TRACKING_DUTY: Final = ("each week, the cases graded below Good that you track until an audit "
                        "grades them Good or better")
REMEDIAL_DUTY: Final = ("Inadequate and Requires Improvement audits, for a remedial plan within "
                        "the framework's days")
QA_DUTY: Final = ("allocation summaries, copies of findings, Teams roster reports and any "
                  "safeguarding alert that could not be delivered; **status** shows completion "
                  "per team and re-audits due")
NO_DUTY: Final = ("Audits of your cases are recorded by the auditors; in this version I do not "
                  "send you messages about them.")

CHANNEL_WELCOME: Final = (
    "Hello, I am the case audit QA bot. Each month I allocate case audits to auditors, send "
    "them the audit form, chase actions and escalate poor practice to managers.\n\n"
    "**In this channel I only ever post totals** (digests for leadership): case references, "
    "findings and names of children never appear here. Everything about a case goes 1:1, "
    "and only to the people it concerns: auditors get their allocations, social workers "
    "and team managers the findings of audits of their cases, action owners reminders, "
    "managers escalations, and the QA team summaries and moderation requests.\n\n"
    "Message me 1:1 and type **help** to see what I will send you."
)
GREETING: Final = ("Hello, I am the case audit QA bot. I run your council's monthly case "
                   "audits in Teams.")
NOT_RECOGNISED: Final = (
    "I do not recognise you as a member of staff yet. Ask your QA team to check that your "
    "email in the staff list matches your Teams account.")


def help_text(*, known: bool, role_labels: Sequence[str], duties: Sequence[str],
              commands: Iterable[tuple[str, str]]) -> str:
    """Who the bot thinks you are, what it will send you, and the commands you may use."""
    lines: list[str] = []
    if not known:
        lines.append(NOT_RECOGNISED)
    else:
        lines.append(f"You are set up as: {', '.join(role_labels) or 'no role'}.")
        lines.append("I will send you: " + "; ".join(duties) + "." if duties else NO_DUTY)
    listed = [f"- **{usage}**: {summary}" for usage, summary in commands]
    if listed:
        lines.append("Commands you can use:")
        lines.extend(listed)
    return "\n\n".join(lines)


# ---------------------------------------------------------------------------- audit form


def draft_resumed(saved: str) -> str:
    return f"Draft saved {saved}: carry on where you left off."


def draft_saved(at: str, deadline: str) -> str:
    return (f"Draft saved {at}. You can close this and come back to it before {deadline}.")


def audit_thanks(first_name: str, case_ref: str, notes: Sequence[str] = ()) -> str:
    """After a submit, in the auditor's 1:1 chat: recorded, and what was queued for whom."""
    text = (f"Thank you{', ' + first_name if first_name else ''}. Your audit of case "
            f"{case_ref} is submitted and recorded. If anything in it needs correcting now, "
            "please ask the QA team.")
    return "\n\n".join([text, *notes])


def names(people: Sequence[str]) -> str:
    """'Tia', 'Tia and Ted', 'Tia, Ted and Sue'."""
    if len(people) <= 1:
        return "".join(people)
    return ", ".join(people[:-1]) + " and " + people[-1]


# ---------------------------------------------------------------------------- findings, Part B


def _day(d: date) -> str:
    return f"{d:%a} {d.day} {d:%b %Y}"


def findings_queued(recipients: Sequence[str], due: date) -> str:
    if not recipients:
        return ("Nobody is recorded as the case's social worker or team manager, so I have "
                "queued the findings for the QA team only.")
    return (f"I have queued the findings for {names(recipients)}, asking for their response "
            f"(Part B) by {_day(due)}, with a copy to the QA team.")


def findings_copy_note(recipients: Sequence[str], due: date) -> str:
    if not recipients:
        return "Copy for the QA team: nobody is recorded as this case's social worker or manager."
    return (f"Copy for the QA team: {names(recipients)} have been asked for Part B by "
            f"{_day(due)}.")


def part_b_recorded(case_ref: str) -> str:
    return f"Your Part B for case {case_ref} is recorded. Thank you."


def part_b_in(who: str, relation: str, case_ref: str, agrees: bool) -> str:
    stance = "agrees with the findings" if agrees else "disagrees with the findings"
    return (f"Part B is in from {who} ({relation}) for your audit of case {case_ref}: "
            f"{stance}.")


# ---------------------------------------------------------------------------- actions

_STATE_WORDS: Final = {"done": "already done", "cancelled": "cancelled",
                       "extension_requested": "already waiting for a decision on more time"}
TEAM_ACTIONS_NOBODY: Final = ("Nobody reports to you in the staff list, so there are no team "
                              "actions to show. Type **my actions** for your own.")


def action_done(what: str, case_ref: str) -> str:
    return f"Done: {what} (case {case_ref}). Recorded."


def action_already(what: str, case_ref: str, status: str, by: str | None) -> str:
    words = _STATE_WORDS.get(status, f"{status}, so nothing was changed")
    who = f" (by {by})" if by and status == "done" else ""
    return f"{what} (case {case_ref}) is {words}{who}. Nothing was changed."


def more_time_asked(what: str, case_ref: str, new_due: date) -> str:
    return (f"Asked for more time on {what} (case {case_ref}), to {_day(new_due)}. Your "
            "manager has been asked to decide; until then the old date stands.")


def more_time_heading(owner: str) -> str:
    return f"{owner} asks for more time"


def more_time_decided(by: str, what: str, case_ref: str, approve: bool,
                      new_due: date | None) -> str:
    if approve and new_due is not None:
        return (f"{by} gave you more time on {what} (case {case_ref}): it is now due "
                f"{_day(new_due)}.")
    return (f"{by} did not give more time on {what} (case {case_ref}): the original due date "
            "stands.")


def more_time_decision(what: str, case_ref: str, approve: bool) -> str:
    word = "Approved" if approve else "Refused"
    return f"{word}: more time on {what} (case {case_ref}). The owner has been told."


def more_time_no_request(what: str, case_ref: str) -> str:
    return (f"There is no request for more time waiting on {what} (case {case_ref}) any more. "
            "Nothing was changed.")


def team_actions_heading(n: int) -> str:
    return f"Open actions in the teams you manage ({n})"


# ---------------------------------------------------------------------------- remedial


def remedial_queued(grade: str, recipients: Sequence[str], due: date) -> str:
    if not recipients:
        return (f"The {grade} grade needs a remedial plan, but nobody holds the roles asked "
                "for it in the staff list: please tell the QA team.")
    return (f"The {grade} grade has been queued for {names(recipients)} for a remedial plan by "
            f"{_day(due)}; the case is tracked until an audit grades it Good or better.")


def tracking_closed(case_ref: str, grade: str) -> str:
    return f"Case {case_ref} is now graded {grade}, so it leaves the tracking-to-Good list."


def remedial_plan_in(by: str, case_ref: str) -> str:
    return f"{by} recorded the remedial plan for case {case_ref}."


def remedial_recorded(case_ref: str) -> str:
    return f"The remedial plan for case {case_ref} is recorded. Thank you."


# ---------------------------------------------------------------------------- safeguarding


def alert_queued(recipients: Sequence[str], ack_hours: int) -> str:
    """To the auditor: queued, not sent; what happens if nobody acknowledges."""
    return (f"I have queued the safeguarding alert for {names(recipients)}. I will tell you at "
            "once if it cannot be delivered, and if nobody acknowledges it within "
            f"{ack_hours} working hour{'s' if ack_hours != 1 else ''} it goes to the next "
            "manager up.")


def alert_undelivered(case_ref: str, recipient: str) -> str:
    """To the auditor, the QA leads (and with the alert, the next manager up)."""
    return (f"**Not delivered:** the safeguarding alert about case {case_ref} could not be "
            f"delivered to {recipient} in Teams. Please make sure they know about it now, "
            "another way.")


def alert_acknowledged(by: str, case_ref: str, at: datetime) -> str:
    return (f"{by} acknowledged the safeguarding concern you raised about case {case_ref} at "
            f"{at:%H:%M} on {at.day} {at:%b %Y}.")


def alert_escalated_note(told: Sequence[str], ack_hours: int) -> str:
    return (f"Not acknowledged by {names(told) or 'the case managers'} within {ack_hours} "
            "working hours, so it has come to you.")


def alert_escalated_to_auditor(case_ref: str, recipients: Sequence[str], ack_hours: int) -> str:
    return (f"Nobody acknowledged the safeguarding concern about case {case_ref} within "
            f"{ack_hours} working hours, so I have queued it for {names(recipients)}.")


# ---------------------------------------------------------------------------- delegation


def delegate_invite(delegate: str, case_ref: str, auditor: str | None, deadline: str) -> str:
    on_behalf = f" on behalf of {auditor}" if auditor else ""
    return (f"Hello {delegate}, the QA team has asked you to audit case {case_ref}{on_behalf}. "
            f"Please submit it by {deadline}.")


def delegate_told_auditor(delegate: str, case_ref: str) -> str:
    return (f"The QA team has asked {delegate} to do the audit of case {case_ref} that was "
            "allocated to you. You can still open it.")


def delegate_done(delegate: str, case_ref: str, deadline: str) -> str:
    return (f"Done: {delegate} can now open, save and submit the audit of case {case_ref} "
            f"(due {deadline}). I have sent them the form.")


def delegate_already(delegate: str, case_ref: str) -> str:
    return f"{delegate} can already do the audit of case {case_ref}."


# ---------------------------------------------------------------------------- completion


def overdue_note(deadline: str, rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    """To a line manager, 1:1: their own staff's overdue audits (name, case refs)."""
    lines = [f"**Case audits overdue** (deadline was {deadline})", "",
             "These audits allocated to people you manage are not submitted yet:", ""]
    for name, refs in rows:
        lines.append(f"- {name}: {len(refs)} ({', '.join(refs)})")
    lines += ["", "Please ask them to submit, or tell the QA team who should take them over."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- roster


def roster_report(linked: int, already: int, unknown_members: int,
                  unmatched: Sequence[str]) -> str:
    text = (f"Linked {linked} staff to Teams (already linked: {already}). "
            f"{unknown_members} Teams member(s) match no staff record.")
    if unmatched:
        text += (f" {len(unmatched)} staff could not be linked (no Teams account with their "
                 f"email): {', '.join(unmatched)}.")
    return text


def roster_check(team: str, report: str) -> str:
    return f"Teams roster check for {team}: {report}"


# ---------------------------------------------------------------------------- digest


DIGEST_CHANNEL_ONLY: Final = ("Please write this in the channel where leaders should get the "
                              "digest (mention me there): a digest is only ever posted to a "
                              "channel, never to a chat.")
DIGEST_DETAILS_REFUSED: Final = ("The digest's details (case by case) go only to leaders and "
                                 "the QA team, 1:1. The totals in the channel are for everyone.")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st: a day of the month said the British way."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def digest_registered(created: bool, *, day: int, time: str, quarterly: bool) -> str:
    """In the channel: what will be posted here, and when (no names, no figures)."""
    when = (f"on the {ordinal(day)} of each month at {time} (the next working day when that "
            "is not one), covering the month before")
    also = " and, in January, April, July and October, the quarter before" if quarterly else ""
    lead = "Done: this channel now gets" if created else "This channel already gets"
    return (f"{lead} the leadership audit digest {when}{also}. It holds totals only; its "
            "Details button sends case-level detail 1:1 to leaders and the QA team.")


def digest_unregistered(changed: bool) -> str:
    if changed:
        return "Done: I will no longer post the audit digest in this channel."
    return "This channel was not getting the audit digest."


def digest_posted(period: str, queued: int, channels: int, complete: bool) -> str:
    """For ``qabot digest --post``: queued is not sent, and says so."""
    if not channels:
        return ("No channel is registered for the digest yet: a QA lead writes "
                "'digests here' in the leadership channel first. Nothing was queued.")
    so_far = "" if complete else " (the period is not over: figures so far)"
    if not queued:
        return f"The {period} digest was already queued for every channel; nothing new."
    return (f"The {period} digest{so_far} is queued for {queued} of {channels} channel(s); "
            "the running service delivers it (see 'qabot outbox status').")


# ---------------------------------------------------------------------------- moderation

MODERATION_DUTY: Final = ("audits to moderate each month (agree, regrade or return them for "
                          "rework), with a reminder before they are due")
CALIBRATION_DUTY: Final = ("the monthly moderation sample; **calibration** shows how often "
                           "moderators agree with each auditor")


def moderation_heading(month: str) -> str:
    return f"Audits to moderate: submitted in {month}"


def moderation_again_heading(case_ref: str) -> str:
    return f"Resubmitted for moderation: case {case_ref}"


def moderation_reminder_heading(due: date) -> str:
    return f"Reminder: moderation due {_day(due)}"


def moderation_summary(month: str, sampled: int, submitted: int, rate: float,
                       always: Sequence[str], per_moderator: Sequence[tuple[str, int]],
                       due: date, unassigned: Sequence[str],
                       unreachable: Sequence[str]) -> str:
    """To the QA team, 1:1: the month's sample, who moderates how many, what could not go."""
    lines = [f"**Moderation sample for audits submitted in {month}**: {sampled} of "
             f"{submitted} ({rate:.0%} sample"
             + (f", every {' and '.join(always)} audit included" if always else "")
             + f"), due {_day(due)}."]
    if per_moderator:
        lines.append("Moderators: " + ", ".join(f"{n} ({k})" for n, k in per_moderator) + ".")
    if unassigned:
        lines.append("Could not allocate (no moderator outside the case's team and line of "
                     f"management): {', '.join(unassigned)}. A QA lead outside the case can "
                     "take one with **moderate CASE_REF**; or add moderators to the staff list.")
    if unreachable:
        lines.append(f"Not reachable in Teams yet (their request waits for them): "
                     f"{names(list(unreachable))}.")
    return "\n\n".join(lines)


MODERATE_USAGE: Final = "moderate CASE_REF"
MODERATION_STATES: Final = {"agreed": "moderated (agreed)", "regraded": "moderated (regraded)",
                            "returned": "returned to its auditor for rework"}


def moderation_taken(case_ref: str, due: date, before: str | None) -> str:
    """To a QA lead who took a moderation with ``moderate CASE_REF``."""
    from_whom = f" (it was with {before})" if before else ""
    return (f"The audit of case {case_ref} is yours to moderate{from_whom}, by {_day(due)}. "
            "The card follows.")


def moderation_queued(moderator: str, due: date) -> str:
    return (f"It was moderated before being returned to you, so I have queued it for "
            f"{moderator} to moderate again by {_day(due)}.")


def moderation_agreed_note(moderator: str, case_ref: str) -> str:
    return (f"{moderator} moderated your audit of case {case_ref} and agreed with your "
            "grades.")


def moderation_regraded_note(moderator: str, case_ref: str, before: str, after: str,
                             changes: Sequence[tuple[str, str, str]], reason: str,
                             added: int) -> str:
    """To the auditor and the people who had the findings: the final grade changed."""
    lines = [f"{moderator} moderated the audit of case {case_ref} and regraded it: the final "
             f"grade is now **{after}** (the auditor gave {before})."]
    if changes:
        lines.append("Changed: " + "; ".join(f"{t} {a} → {m}" for t, a, m in changes) + ".")
    lines.append(f"Reason: {reason}")
    if added:
        lines.append(f"The moderator added {added} action{'s' if added != 1 else ''}; "
                     "their owners have been asked to do them.")
    return "\n\n".join(lines)


def moderation_action_note(moderator: str, case_ref: str, what: str, due: date) -> str:
    return (f"{moderator} moderated the audit of case {case_ref} and added an action for "
            f"you: **{what}**, due {_day(due)}. Type **my actions** to see it with its "
            "buttons.")


def returned_for_rework(moderator: str, reason: str, deadline: date, kept: int) -> str:
    """At the top of a returned form: who returned it, why, by when, and the actions kept."""
    kept_words = (f" The {kept} action{'s' if kept != 1 else ''} you recorded stay open with "
                  "their owners; add any new ones below." if kept else "")
    return (f"Returned for rework by {moderator}: {reason} Please correct the audit and "
            f"submit it again by {_day(deadline)}; your entries are kept.{kept_words}")


def moderation_overdue_note(rows: Sequence[tuple[str, date, Sequence[str]]]) -> str:
    """To a moderator's manager, 1:1: their staff's moderations past due."""
    lines = ["These moderations are past their due date:"]
    lines += [f"- {who}: {', '.join(refs)} (due {_day(due)})" for who, due, refs in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- allocation


def _count(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _some(names: Sequence[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def exclusion_lines(exclusions: Iterable[Exclusion], *, team: Callable[[str], str],
                    who: Callable[[str], str], window_months: int) -> list[str]:
    """The dry run's "which rule excluded what", one line per rule (per auditor for the line
    of management); ``team`` and ``who`` name a team key and a staff id."""
    items = list(exclusions)
    by_rule: dict[str, list[Exclusion]] = {}
    for item in items:
        by_rule.setdefault(item.rule, []).append(item)
    lines: list[str] = []
    for rule, text in (
        (RULE_ALREADY_ALLOCATED, "already allocated this month by another run"),
        (RULE_REPEAT_WINDOW, f"audited in the last {window_months} months (the repeat window) "
                             "with no re-audit due"),
        (RULE_NO_AREA_COUNT, "in an area of planning with no audit count this month"),
    ):
        for item in by_rule.get(rule, []):
            lines.append(f"{_count(item.cases, 'case')} {text}")
    own = by_rule.get(RULE_OWN_TEAM, [])
    if own:
        per_team = {i.teams: i.cases for i in own}
        lines.append(f"own team: {_count(len(own), 'auditor')} never offered a case from "
                     f"their own team ({_count(sum(per_team.values()), 'eligible case')} in "
                     f"{_count(len(per_team), 'team')})")
    for item in by_rule.get(RULE_MANAGED_TEAMS, []):
        assert item.auditor_id is not None
        names = [team(t) for t in item.teams]
        lines.append(f"line of management: {who(item.auditor_id)} never offered the "
                     f"{_count(item.cases, 'eligible case')} of the "
                     f"{_count(len(names), 'team')} below them ({_some(names)})")
    held = by_rule.get(RULE_OWN_CASELOAD, [])
    if held:
        lines.append(f"own caseload: {_count(len(held), 'auditor')} never offered the "
                     f"{_count(sum(i.cases for i in held), 'eligible case')} they hold in "
                     "other teams")
    return lines


def allocation_deadline_passed(month: str, deadline: str) -> str:
    """A month allocated after its own deadline: said plainly, the run still goes ahead."""
    return (f"the deadline for {month} ({deadline}) has already passed, so every audit "
            "allocated now is overdue at once. Check the month: the current month may be "
            "the one you meant.")


def unreachable_next_step(n: int, teams_installed: int, *, dry_run: bool) -> str:
    """What to do when allocation names people the bot cannot reach in Teams."""
    held = "would be held" if dry_run else "are held"
    people = "person is" if n == 1 else "people are"
    if teams_installed == 0:
        how = ("The bot is not installed in any team yet: add it to a team these people "
               "belong to in Teams (it links everyone it can when it is installed), or ask "
               "them to open the bot in Teams and say hello.")
    else:
        how = ("Make sure each of them is a member of a team the bot is installed in, then "
               "run `qabot teams sync`; or ask them to open the bot in Teams and say hello.")
    return (f"Next step: {n} {people} not linked to Teams, so their messages {held} (not "
            f"lost). {how} Each held message goes out as soon as its person is linked. "
            "`qabot staff unlinked` says why each one is not linked.")


# ---------------------------------------------------------------------------- reaching staff

LINK_FIX: Final = (
    "How to fix: make sure each person is a member of a team the bot is installed in (or "
    "correct their email in the staff file and import it again), then run `qabot teams "
    "sync`; or ask them to open the bot in Teams and say hello, which links them at once. "
    "Held messages go out as soon as each person is linked.")


def unlinked_report(people: Sequence[tuple[str, str, str, Sequence[str], str | None, int]], *,
                    teams: Sequence[str], linked_domains: Mapping[str, int]) -> list[str]:
    """``qabot staff unlinked``: one entry per person (id, name, email, role labels, team,
    messages waiting for them), the likely reason, and the fix."""
    linked = sum(linked_domains.values())
    if not people:
        return [f"Everyone on the staff list ({_count(linked, 'active person', 'active people')})"
                " is linked to Teams."]
    lines = [f"{len(people)} of {_count(len(people) + linked, 'active person', 'active people')} "
             "cannot be reached in Teams (not linked to a Teams account)."]
    if teams:
        lines.append(f"The bot is installed in: {', '.join(teams)}.")
    else:
        lines.append("The bot is not installed in any team yet, so nobody can have been "
                     "linked from a team roster.")
    lines.append("")
    known = sorted(linked_domains, key=lambda d: (-linked_domains[d], d))
    for staff_id, name, email, roles, team, held in people:
        where = ", ".join([*roles, *([team] if team else [])])
        waiting = f" - {_count(held, 'message')} waiting" if held else ""
        lines.append(f"{staff_id} {name} <{email}> ({where}){waiting}")
        domain = email.rpartition("@")[2].lower()
        if not teams:
            why = "the bot is not installed in any team yet"
        elif known and domain not in linked_domains:
            why = (f"no Teams account has this email; its domain ({domain}) is not the domain "
                   f"of anyone linked so far ({', '.join(known[:3])}): check it for a typo")
        else:
            why = ("no member of the teams the bot is in has this email or sign-in name "
                   "(not in those teams, or known to Teams by another address)")
        lines.append(f"  why: {why}")
    lines += ["", LINK_FIX]
    return lines


# ---------------------------------------------------------------------------- imports


def team_without_cases(team: str, nearest: str | None) -> str:
    """Staff import: a new team that no open case belongs to (imported all the same)."""
    hint = f" Did you mean {nearest}?" if nearest else ""
    return (f"team '{team}' is new and no open case belongs to it.{hint} If it is a typo, "
            "fix the staff file and import it again; the rows were imported as they are.")


def team_without_staff(team: str, nearest: str | None) -> str:
    """Cases import: a new team that no member of staff belongs to (imported all the same)."""
    hint = f" Did you mean {nearest}?" if nearest else ""
    return (f"team '{team}' is new and no member of staff belongs to it.{hint} If it is a "
            "typo, fix the cases file and import it again; the rows were imported as they "
            "are.")
