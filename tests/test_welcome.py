"""Install, first contact and help, per role, through the running service and fake Teams."""

from __future__ import annotations

import asyncio
import re
from datetime import date

import pytest
from sqlalchemy import select

from cards.messages import (
    ACTIONS_DUTY,
    AUDITOR_DUTY,
    CHANNEL_WELCOME,
    DELEGATE_USAGE,
    ESCALATION_DUTY,
    FINDINGS_DUTY,
    MANAGER_DUTY,
    NO_DUTY,
    QA_DUTY,
    REMEDIAL_DUTY,
    SAFEGUARDING_DUTY,
    TRACKING_DUTY,
)
from store.models import Case, Staff, Team
from tests.fakes import Team as TeamsTeam
from tests.fakes import User, message, personal_conversation_id, personal_install, team_install

CASE_REF = re.compile(r"\bC-\d{4,}\b")


async def seed(ctx, staff_id: str, user: User | None, roles: list[str], *,
               linked: bool = True) -> None:
    """A staff member (linked to Teams or known only by email) and a case in their team."""
    async with ctx.sessions.begin() as session:
        team = Team(name=f"Team of {staff_id}")
        session.add(team)
        await session.flush()
        session.add(Staff(
            staff_id=staff_id, name=user.name if user else staff_id,
            email=user.email if user else f"{staff_id.lower()}@council.example", roles=roles,
            team_id=team.id, teams_user_id=user.id if user and linked else None,
            aad_object_id=user.aad_object_id if user and linked else None))
        session.add(Case(case_ref=f"C-{abs(hash(staff_id)) % 10**6:06d}", team_id=team.id,
                         social_worker_id=staff_id, area="cp", opened_on=date(2026, 1, 5)))


async def install_personally(service, user: User) -> list[str]:
    for activity in personal_install(user=user, service_url=service.connector.url):
        resp = await service.post(activity)
        assert resp.status in (200, 201)
    return service.connector.texts(personal_conversation_id(user))


ROLES = [
    ("social_worker", "Social worker"),
    ("team_manager", "Team manager"),
    ("qa_lead", "Service manager, practice evaluation and audit"),
    ("director", "Director of children's social care"),
]

# What each role is told it will receive, in the bundled Lambeth-like framework (team
# managers audit one case a month; directors do not audit but are asked for remedial plans;
# the QA lead is in the QA team). Issue 9: social workers now get findings, Part B and
# their actions; managers escalations and alerts to acknowledge.
EXPECTED_DUTIES = {
    "social_worker": [FINDINGS_DUTY, ACTIONS_DUTY],
    "team_manager": [AUDITOR_DUTY.format(n=1), FINDINGS_DUTY, ACTIONS_DUTY, MANAGER_DUTY,
                     ESCALATION_DUTY, SAFEGUARDING_DUTY],
    "qa_lead": [QA_DUTY],
    "director": [FINDINGS_DUTY, ACTIONS_DUTY, MANAGER_DUTY, ESCALATION_DUTY, SAFEGUARDING_DUTY,
                 REMEDIAL_DUTY],
}
ALL_DUTIES = {NO_DUTY, AUDITOR_DUTY.format(n=1), FINDINGS_DUTY, ACTIONS_DUTY, MANAGER_DUTY,
              ESCALATION_DUTY, SAFEGUARDING_DUTY, TRACKING_DUTY, REMEDIAL_DUTY, QA_DUTY}


@pytest.mark.parametrize(("role", "label"), ROLES)
async def test_first_contact_explains_what_the_person_will_get(service, role, label) -> None:
    user = User.named(f"First {role.replace('_', ' ').title()}")
    await seed(service.ctx, "S1", user, [role])  # linked by a roster sync or `qabot teams sync`

    texts = await install_personally(service, user)

    assert len(texts) == 1, "conversationUpdate and installationUpdate must greet once"
    assert "I run your council's monthly case audits" in texts[0]
    assert f"You are set up as: {label}." in texts[0]
    for duty in ALL_DUTIES:
        promised = duty in EXPECTED_DUTIES[role]
        assert (duty in texts[0]) is promised, f"{role}: {duty!r} promised={promised}"
    assert "**help**" in texts[0]


async def test_first_contact_links_a_person_known_only_by_email(service) -> None:
    """Staff imported by CSV have only an email: the Teams profile lookup links them."""
    user = User.named("Email Only")
    service.connector.add_users(user)  # Teams answers the profile lookup with the email
    await seed(service.ctx, "S1", user, ["team_manager"], linked=False)
    texts = await install_personally(service, user)
    assert (await service.ctx.directory.staff_for_user(user.id, user.aad_object_id)) is not None
    assert "You are set up as: Team manager." in texts[0]


async def test_first_contact_with_an_unknown_person_says_how_to_get_set_up(service) -> None:
    stranger = User.named("Unknown Person")
    service.connector.add_users(stranger)
    texts = await install_personally(service, stranger)
    assert len(texts) == 1
    assert "do not recognise you as a member of staff" in texts[0]
    assert "I will send you" not in texts[0]


@pytest.mark.parametrize(("role", "label"), [*ROLES, (None, None)])
async def test_help_lists_the_commands_for_the_persons_roles(service, role, label) -> None:
    user = User.named(f"Helped {role or 'nobody'}")
    if role:
        await seed(service.ctx, "S1", user, [role])
    await service.post(message("help", user=user, service_url=service.connector.url))

    [text] = service.connector.texts(personal_conversation_id(user))
    roles = frozenset({role} if role else set())
    router = service.ctx.router
    for command in router.commands:
        listed = f"**{command.usage}**" in text
        allowed = command in router.commands_for(roles, service.ctx.framework.qa_roles)
        assert listed == allowed, command.usage
    assert "**help**" in text
    qa_only = ("**status**", f"**{DELEGATE_USAGE}**")  # the QA team's commands
    if role == "qa_lead":
        assert all(usage in text for usage in qa_only)
    else:
        assert not any(usage in text for usage in qa_only)
    if role:
        assert f"You are set up as: {label}." in text
        assert all(duty in text for duty in EXPECTED_DUTIES[role])
    else:
        assert "do not recognise you" in text


async def test_channel_welcome_is_posted_once_even_if_install_repeats(service) -> None:
    fc = service.connector
    team = TeamsTeam.named("Leadership")
    fc.add_team(team)
    for _ in range(2):  # Teams may resend; reinstalling also sends both events again
        for activity in team_install(team, service_url=fc.url):
            assert (await service.post(activity)).status in (200, 201)
    assert fc.texts(team.id) == [CHANNEL_WELCOME]


async def test_channel_welcome_says_what_goes_where_and_names_no_case_or_child(service) -> None:
    fc = service.connector
    sw = User.named("Casey Worker")
    await seed(service.ctx, "SW1", sw, ["social_worker"])
    team = TeamsTeam.named("Practice Leadership")
    fc.add_team(team, members=[sw])
    for activity in team_install(team, service_url=fc.url):
        await service.post(activity)

    [text] = fc.texts(team.id)
    assert "only ever post totals" in text  # what it never posts in a channel
    assert "1:1" in text and "auditors" in text and "QA team" in text  # who it messages
    async with service.ctx.sessions() as session:
        refs = list(await session.scalars(select(Case.case_ref)))
    assert refs and not any(ref in text for ref in refs)
    assert not CASE_REF.search(text)
    assert sw.name not in text
    # nothing at all reached the channel except the welcome
    assert len(fc.sent(team.id)) == 1


async def test_a_group_chat_install_posts_nothing(service) -> None:
    fc = service.connector
    user = User.named("Group Starter")
    from tests.fakes import installation_update

    await service.post(installation_update("add", user=user, service_url=fc.url,
                                           conversation_type="groupChat"))
    assert fc.texts() == []


async def test_two_install_events_together_both_see_the_person_linked(service) -> None:
    """Issue 12: linking moved to the turn handler; the two install events Teams sends at
    once share one profile lookup, so the welcome never treats a known person as a stranger."""
    from tests.fakes import User, personal_install
    from tests.test_service import add_staff

    fc, ctx = service.connector, service.ctx
    person = User.named("Kim Together")
    await add_staff(ctx, "K1", None, ["team_manager"], email=person.email, team="Team K")
    fc.add_users(person)
    await asyncio.gather(*(service.post(a) for a in personal_install(user=person,
                                                                     service_url=fc.url)))
    [welcome] = fc.texts()
    assert "Team manager" in welcome and "do not recognise you" not in welcome
    lookups = [r for r in fc.requests if r.operation == "get_conversation_member"]
    assert len(lookups) == 1
