"""Every plain-text sentence the bot says, in one place (cards are in the other modules here).

Pure functions and constants: no I/O, no SDK. A refusal raised anywhere as a
:class:`qa.errors.DomainError` code becomes its sentence here (:func:`error_text`), so the
wording of the whole bot can be read and reviewed in this folder. Texts carry case
references and names only where the message goes 1:1 to someone entitled to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
# audits, who is in the QA team), so help never promises a message that is not sent.
AUDITOR_DUTY: Final = ("your monthly audit allocation ({n} a month) with the audit form, and "
                       "a reminder before the deadline")
MANAGER_DUTY: Final = "a note when someone you manage has not submitted an audit by its deadline"
SAFEGUARDING_DUTY: Final = ("at once, any serious safeguarding concern an auditor raises about a "
                            "case in a team you manage")
QA_DUTY: Final = ("allocation summaries and Teams roster reports; **status** shows completion "
                  "per team")
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


def audit_thanks(first_name: str, case_ref: str, *, safeguarding: bool) -> str:
    """After a submit, in the auditor's 1:1 chat."""
    text = (f"Thank you{', ' + first_name if first_name else ''}. Your audit of case "
            f"{case_ref} is submitted and recorded. If anything in it needs correcting now, "
            "please ask the QA team.")
    if safeguarding:
        text += (" I have sent the safeguarding concern to the case's team manager and their "
                 "manager now.")
    return text


def safeguarding_alert(case_ref: str, auditor_name: str | None, details: str) -> str:
    """SPEC R6: 1:1 to the case's team managers and their managers, at once."""
    return (f"**Serious safeguarding concern** raised in the audit of case {case_ref} by "
            f"{auditor_name or 'the auditor'}: {details}\n\nPlease act on it now and record "
            "what was done on the child's record.")


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
