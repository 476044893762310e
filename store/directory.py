"""Staff, teams and where to reach people in Teams.

Times come from the service's clock, handed in at construction: the directory never reads
the machine's clock itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from qa.people import Person
from store.audit_log import record
from store.models import Case, Conversation, OutboxMessage, Staff, Team
from store.outbox import release_held_in


@dataclass(frozen=True)
class Target:
    """Where a message for one person or conversation goes."""

    reference: dict[str, Any] | None
    # Enough to open a 1:1 chat when none exists yet:
    teams_user_id: str | None = None
    aad_object_id: str | None = None
    service_url: str | None = None
    tenant_id: str | None = None
    bot_id: str | None = None


@dataclass(frozen=True)
class LinkReport:
    linked: list[str]
    already: list[str]
    unmatched_staff: list[str]
    unknown_members: int
    #: Held outbox messages of the newly linked staff, put back in the queue by the link.
    released: int = 0


@dataclass(frozen=True)
class UnlinkedStaff:
    """An active member of staff the bot cannot reach in Teams, with what is known."""

    staff_id: str
    name: str
    email: str
    roles: tuple[str, ...]
    team: str | None
    held: int  # messages waiting for them (held, or queued and not tried yet)


@dataclass(frozen=True)
class Reachability:
    """Who cannot be reached, and the facts that say why: the teams the bot is in and the
    email domains of the staff linked so far."""

    unlinked: list[UnlinkedStaff]
    teams: list[str]
    linked_domains: dict[str, int]


class Directory:
    """Queries and updates about people and conversations."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    async def staff(self, staff_id: str) -> Staff | None:
        async with self._sessions() as session:
            return await session.get(Staff, staff_id)

    async def staff_for_user(self, user_id: str, aad_object_id: str | None) -> Staff | None:
        """The active staff record linked to a Teams user (by Teams id or AAD object id)."""
        async with self._sessions() as session:
            return await _staff_by_identity(session, user_id, aad_object_id, active_only=True)

    async def team_name(self, team_id: int | None) -> str | None:
        if team_id is None:
            return None
        async with self._sessions() as session:
            team = await session.get(Team, team_id)
            return team.name if team else None

    async def save_conversation(
        self,
        *,
        conversation_id: str,
        kind: str,
        service_url: str,
        tenant_id: str | None,
        reference: dict[str, Any],
        teams_user_id: str | None = None,
        aad_object_id: str | None = None,
        team_id: str | None = None,
        team_name: str | None = None,
        actor: str = "teams",
    ) -> bool:
        """Store or refresh a conversation reference; returns True when it is new.

        A personal chat is tied to the staff member whose Teams identity it is, so the
        outbox can reach them later without creating another chat. Two first activities
        of a new chat arriving together both try to insert it: the loser updates instead.
        """
        now = self._clock()
        for attempt in (1, 2):
            try:
                async with self._sessions.begin() as session:
                    conv = await session.get(Conversation, conversation_id)
                    created = conv is None
                    staff_id: str | None = None
                    if kind == "personal" and teams_user_id:
                        staff = await _staff_by_identity(session, teams_user_id, aad_object_id)
                        staff_id = staff.staff_id if staff else None
                    if conv is None:
                        conv = Conversation(id=conversation_id, kind=kind, reference=reference,
                                            service_url=service_url)
                        session.add(conv)
                    conv.kind = kind
                    conv.service_url = service_url
                    conv.tenant_id = tenant_id or conv.tenant_id
                    conv.reference = reference
                    conv.teams_user_id = teams_user_id or conv.teams_user_id
                    conv.staff_id = staff_id or conv.staff_id
                    conv.team_id = team_id or conv.team_id
                    conv.team_name = team_name or conv.team_name
                    conv.updated_at = now
                    if created:
                        record(session, at=now, actor=actor, action="conversation.added",
                               entity="conversation", entity_id=conversation_id,
                               after={"kind": kind, "team_id": team_id, "staff_id": staff_id})
                return created
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def mark_welcomed(self, conversation_id: str) -> bool:
        """Set the welcome flag once; False when it was already set.

        A conditional UPDATE, so the two install events Teams sends together cannot both win.
        """
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id, Conversation.welcomed_at.is_(None))
                .values(welcomed_at=self._clock())
            )
            return result.rowcount == 1

    async def conversation(self, conversation_id: str) -> Conversation | None:
        async with self._sessions() as session:
            return await session.get(Conversation, conversation_id)

    async def team_conversations(self) -> list[Conversation]:
        """Channels where the bot is installed (one per team: the one it was added to)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Conversation).where(Conversation.kind == "channel").order_by(Conversation.id)
            )
            return list(rows)

    async def target_for_staff(self, staff_id: str) -> Target | None:
        """How to reach a staff member 1:1, or None when they are not linked to Teams."""
        async with self._sessions() as session:
            staff = await session.get(Staff, staff_id)
            if staff is None or not staff.teams_user_id:
                return None
            conv = await session.scalar(
                select(Conversation)
                .where(Conversation.kind == "personal",
                       or_(Conversation.staff_id == staff_id,
                           Conversation.teams_user_id == staff.teams_user_id))
                .order_by(Conversation.updated_at.desc())
                .limit(1)
            )
            if conv is not None:
                return Target(reference=conv.reference)
            # No chat yet: borrow the service URL, tenant and bot id of any known one.
            anchor = await session.scalar(
                select(Conversation).order_by(Conversation.updated_at.desc()).limit(1)
            )
            if anchor is None:
                return Target(reference=None, teams_user_id=staff.teams_user_id)
            return Target(
                reference=None,
                teams_user_id=staff.teams_user_id,
                aad_object_id=staff.aad_object_id,
                service_url=anchor.service_url,
                tenant_id=anchor.tenant_id,
                bot_id=(anchor.reference.get("bot") or {}).get("id"),
            )

    async def target_for_conversation(self, conversation_id: str) -> Target | None:
        conv = await self.conversation(conversation_id)
        return Target(reference=conv.reference) if conv else None

    async def link_members(self, members: list[tuple[str, str | None, str | None]],
                           actor: str) -> LinkReport:
        """Link staff to Teams users by email or UPN, case-insensitively.

        ``members`` holds (teams user id, aad object id, email-or-upn) triples; each
        may carry both an email and a UPN joined by a space.
        """
        by_address: dict[str, tuple[str, str | None]] = {}
        for user_id, aad, addresses in members:
            for address in (addresses or "").split():
                by_address[address.strip().lower()] = (user_id, aad)
        linked: list[str] = []
        already: list[str] = []
        unmatched: list[str] = []
        matched_users: set[str] = set()
        now = self._clock()
        async with self._sessions.begin() as session:
            staff_rows = (await session.scalars(
                select(Staff).where(Staff.active.is_(True)).order_by(Staff.staff_id))).all()
            for staff in staff_rows:
                hit = by_address.get(staff.email.strip().lower())
                if hit is None:
                    if not staff.teams_user_id:
                        unmatched.append(staff.staff_id)
                    continue
                user_id, aad = hit
                matched_users.add(user_id)
                if staff.teams_user_id == user_id and (aad is None or staff.aad_object_id == aad):
                    already.append(staff.staff_id)
                    continue
                before = {"teams_user_id": staff.teams_user_id, "aad_object_id": staff.aad_object_id}
                staff.teams_user_id = user_id
                staff.aad_object_id = aad or staff.aad_object_id
                staff.updated_at = now
                record(session, at=now, actor=actor, action="staff.linked", entity="staff",
                       entity_id=staff.staff_id, before=before,
                       after={"teams_user_id": user_id, "aad_object_id": staff.aad_object_id})
                linked.append(staff.staff_id)
            # Attach existing personal chats to newly linked staff.
            for staff_id in linked:
                staff = await session.get(Staff, staff_id)
                assert staff is not None
                convs = await session.scalars(select(Conversation).where(
                    Conversation.kind == "personal",
                    Conversation.teams_user_id == staff.teams_user_id))
                for conv in convs:
                    conv.staff_id = staff_id
            # What waited for them goes out now, committed with the link itself.
            await session.flush()
            released = await release_held_in(session, linked)
        unknown = len({m[0] for m in members} - matched_users)
        return LinkReport(linked, already, unmatched, unknown, released)

    async def staff_without_chat(self) -> list[tuple[str, Target]]:
        """Active staff linked to Teams who have no 1:1 chat with the bot yet, each with
        what opening one needs (borrowed from the newest known conversation)."""
        async with self._sessions() as session:
            anchor = await session.scalar(
                select(Conversation).order_by(Conversation.updated_at.desc()).limit(1))
            if anchor is None:
                return []
            chat = (select(Conversation.id)
                    .where(Conversation.kind == "personal",
                           or_(Conversation.staff_id == Staff.staff_id,
                               Conversation.teams_user_id == Staff.teams_user_id))
                    .exists())
            rows = (await session.execute(
                select(Staff.staff_id, Staff.teams_user_id, Staff.aad_object_id)
                .where(Staff.active.is_(True), Staff.teams_user_id.is_not(None), ~chat)
                .order_by(Staff.staff_id))).all()
        bot_id = (anchor.reference.get("bot") or {}).get("id")
        return [(sid, Target(reference=None, teams_user_id=uid, aad_object_id=aad,
                             service_url=anchor.service_url, tenant_id=anchor.tenant_id,
                             bot_id=bot_id))
                for sid, uid, aad in rows]

    async def reachability(self) -> Reachability:
        """Active staff not linked to Teams, with their held messages and the facts that
        explain it (for ``qabot staff unlinked``)."""
        async with self._sessions() as session:
            team_names = dict((await session.execute(select(Team.id, Team.name))).all())
            rows = (await session.scalars(
                select(Staff).where(Staff.active.is_(True)).order_by(Staff.staff_id))).all()
            # Held by the sender, or queued and not tried yet: waiting for them either way.
            held = dict((await session.execute(
                select(OutboxMessage.staff_id, func.count())
                .where(OutboxMessage.status.in_(("held", "pending", "sending")))
                .group_by(OutboxMessage.staff_id))).all())
            teams = sorted({c.team_name or c.id for c in await session.scalars(
                select(Conversation).where(Conversation.kind == "channel"))})
        domains: dict[str, int] = {}
        unlinked: list[UnlinkedStaff] = []
        for staff in rows:
            if staff.teams_user_id:
                domain = staff.email.rpartition("@")[2].lower()
                domains[domain] = domains.get(domain, 0) + 1
                continue
            unlinked.append(UnlinkedStaff(
                staff.staff_id, staff.name, staff.email, tuple(staff.roles or ()),
                team_names.get(staff.team_id) if staff.team_id is not None else None,
                int(held.get(staff.staff_id, 0))))
        return Reachability(unlinked, teams, domains)

    async def staff_with_roles(self, roles: set[str] | frozenset[str]) -> list[Staff]:
        async with self._sessions() as session:
            return await staff_with_roles(session, roles)



async def staff_with_roles(session: AsyncSession, roles: Iterable[str]) -> list[Staff]:
    """Active staff holding any of these roles, by staff id (roles are a JSON list)."""
    wanted = frozenset(roles)
    rows = (await session.scalars(
        select(Staff).where(Staff.active.is_(True)).order_by(Staff.staff_id))).all()
    return [s for s in rows if wanted.intersection(s.roles or [])]


async def team_usage(session: AsyncSession) -> dict[str, tuple[int, int]]:
    """Every team by name: (active staff in it, open cases in it)."""
    staff = dict((await session.execute(
        select(Staff.team_id, func.count()).where(Staff.active.is_(True))
        .group_by(Staff.team_id))).all())
    cases = dict((await session.execute(
        select(Case.team_id, func.count()).where(Case.status == "open")
        .group_by(Case.team_id))).all())
    return {name: (int(staff.get(tid, 0)), int(cases.get(tid, 0)))
            for tid, name in (await session.execute(select(Team.id, Team.name))).all()}


def as_person(staff: Staff) -> Person:
    return Person(staff.staff_id, staff.name, frozenset(staff.roles or []), staff.team_id,
                  staff.manager_id, bool(staff.active))


async def people(session: AsyncSession, staff_ids: Iterable[str] | None = None) -> list[Person]:
    """Staff as the line of management sees them, leavers included (a chain walks past
    them); everyone, or the ones named."""
    query = select(Staff)
    if staff_ids is not None:
        ids = sorted(set(staff_ids))
        if not ids:
            return []
        query = query.where(Staff.staff_id.in_(ids))
    return [as_person(s) for s in await session.scalars(query.order_by(Staff.staff_id))]


async def line_above(session: AsyncSession, staff_ids: Iterable[str],
                     levels: int = 50) -> list[Person]:
    """These people and ``levels`` of managers above them, one query per level.

    The default reaches the top of any council; a loop in a bad file stops there too.
    """
    found: dict[str, Person] = {}
    wanted = set(staff_ids)
    for _ in range(levels + 1):
        wanted -= set(found)
        if not wanted:
            break
        batch = await people(session, wanted)
        if not batch:
            break
        for p in batch:
            found[p.staff_id] = p
        wanted = {p.manager_id for p in batch if p.manager_id}
    return list(found.values())


async def _staff_by_identity(session: AsyncSession, user_id: str, aad_object_id: str | None,
                             *, active_only: bool = False) -> Staff | None:
    """The staff record with this Teams user id or AAD object id, if any."""
    conditions = [Staff.teams_user_id == user_id]
    if aad_object_id:
        conditions.append(Staff.aad_object_id == aad_object_id)
    query = select(Staff).where(or_(*conditions))
    if active_only:
        query = query.where(Staff.active.is_(True))
    return await session.scalar(query.limit(1))
