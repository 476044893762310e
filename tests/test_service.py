"""The service as Teams (and an operator) sees it: /api/messages, /healthz, auth, tenants."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from qabot.app import init_app
from qabot.settings import Settings
from store.models import Staff, Team
from tests.fakes import User, message, personal_conversation_id

AUDITOR = User.named("Dana Auditor")


async def add_staff(ctx, staff_id: str, user: User | None, roles: list[str], email: str | None = None,
                    team: str = "Team A") -> None:
    async with ctx.sessions.begin() as session:
        team_row = Team(name=team)
        session.add(team_row)
        await session.flush()
        session.add(Staff(staff_id=staff_id, name=user.name if user else staff_id,
                          email=email or (user.email if user else f"{staff_id}@council.example"),
                          roles=roles, team_id=team_row.id,
                          teams_user_id=user.id if user else None,
                          aad_object_id=user.aad_object_id if user else None))


async def test_healthz_is_a_cheap_liveness_check(service, monkeypatch) -> None:
    # Issue 12: liveness never touches the database (readiness, /readyz, does).
    async def no_database() -> bool:
        raise AssertionError("/healthz must not query the database")

    monkeypatch.setattr(type(service.ctx), "database_ok", lambda self: no_database())
    resp = await service.client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["uptime_seconds"] >= 0


async def test_help_is_answered_at_the_activity_service_url(service) -> None:
    fc = service.connector
    await add_staff(service.ctx, "S1", AUDITOR, ["team_manager"])
    resp = await service.post(message("help", user=AUDITOR, service_url=fc.url))
    assert resp.status in (200, 201)
    conv = personal_conversation_id(AUDITOR)
    texts = fc.texts(conv)
    assert len(texts) == 1
    assert "Team manager" in texts[0] or "team manager" in texts[0].lower()
    assert "**help**" in texts[0]
    # the conversation reference is kept for proactive messages later
    stored = await service.ctx.directory.conversation(conv)
    assert stored is not None and stored.staff_id == "S1"
    assert stored.service_url == fc.url


async def test_help_lists_only_commands_for_the_persons_roles(service) -> None:
    fc = service.connector
    worker = User.named("Sam Worker")
    await add_staff(service.ctx, "S2", worker, ["social_worker"])
    await service.post(message("help", user=worker, service_url=fc.url))
    text = fc.texts(personal_conversation_id(worker))[0]
    assert "Social worker" in text
    for command in service.ctx.router.commands:
        if command.roles is not None and "social_worker" not in command.roles:
            assert f"**{command.usage}**" not in text


async def test_unknown_person_is_told_how_to_get_set_up(service) -> None:
    fc = service.connector
    stranger = User.named("Not Staff")
    await service.post(message("help", user=stranger, service_url=fc.url))
    assert "do not recognise you" in fc.texts(personal_conversation_id(stranger))[0]


async def test_unknown_text_gets_a_pointer_to_help(service) -> None:
    fc = service.connector
    await service.post(message("what is this", user=AUDITOR, service_url=fc.url))
    assert "Type **help**" in fc.texts()[0]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_other_tenants_are_ignored_without_reply(db_url, framework, fake_connector, caplog) -> None:
    settings = Settings(database_url=db_url, allowed_tenants=frozenset({"ours"}),
                        scheduler_enabled=False, log_format="text")
    async with TestClient(TestServer(init_app(settings, framework=framework))) as client:
        resp = await client.post("/api/messages", json=message(
            "help", tenant_id="someone-else", service_url=fake_connector.url))
        assert resp.status in (200, 201)
        resp = await client.post("/api/messages", json=message(
            "help", tenant_id="ours", service_url=fake_connector.url))
    assert len(fake_connector.texts()) == 1
    assert "tenant that is not allowed" in caplog.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_with_an_app_id_unauthenticated_requests_get_401(db_url, framework, fake_connector) -> None:
    settings = Settings(database_url=db_url, app_id="00000000-0000-0000-0000-000000000001",
                        app_password="secret", app_type="SingleTenant",
                        app_tenant_id="tenant", scheduler_enabled=False, log_format="text")
    async with TestClient(TestServer(init_app(settings, framework=framework))) as client:
        resp = await client.post("/api/messages", json=message("help", service_url=fake_connector.url))
        assert resp.status == 401
        resp = await client.post("/api/messages", json=message("help", service_url=fake_connector.url),
                                 headers={"Authorization": "Bearer not-a-real-token"})
        assert resp.status == 401
    assert fake_connector.texts() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_oversized_and_malformed_bodies_are_refused(service) -> None:
    big = message("x" * (service.ctx.settings.max_body_bytes + 10), service_url=service.connector.url)
    resp = await service.post(big)
    assert resp.status == 413
    resp = await service.client.post("/api/messages", data="not json",
                                     headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert service.connector.texts() == []




@pytest.mark.parametrize(("roles", "listed"), [
    (["qa_lead"], True),
    (["practice_assurance_lead"], True),  # a QA role named by the framework file only
    (["social_worker"], False),
    (["team_manager"], False),
])
async def test_qa_team_commands_follow_the_frameworks_qa_roles(service, roles, listed) -> None:
    fc = service.connector
    assert "practice_assurance_lead" in service.ctx.framework.qa_roles
    person = User.named("Role Holder")
    await add_staff(service.ctx, "R1", person, roles)
    await service.post(message("help", user=person, service_url=fc.url))
    await service.post(message("status", user=person, service_url=fc.url))
    conv = personal_conversation_id(person)
    help_text, *refusal = fc.texts(conv)
    assert ("**status**" in help_text) is listed
    assert ("**delegate CASE_REF to EMAIL**" in help_text) is listed
    if listed:  # the completion card, not a refusal
        assert refusal == [] and len(fc.cards(conv)) == 1
    else:
        assert refusal == ["**status** is for the QA team only."] and fc.cards(conv) == []
