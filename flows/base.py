"""What every flow shares: the unit of work and the council's clock.

A use case that changes state opens one :func:`unit_of_work`: the store functions it calls,
the audit-log rows (``work.log``) and the messages it queues (``work.tell``) all go through
the one session, so they commit together or not at all; once committed, the in-process
sender is woken so delivery does not wait for its next poll.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from qa.form_rules import Submission
from qa.periods import local_date
from store.audit_log import record
from store.models import Audit, Case
from store.outbox import Message, queue_in

if TYPE_CHECKING:
    from qabot.services import Services


@dataclass
class Work:
    """One transaction of a use case, with who acts and when (the one clock)."""

    session: AsyncSession
    at: datetime
    actor: str
    queued: int = 0

    async def tell(self, message: Message) -> bool:
        """Queue a message with the change; False when its dedupe key was queued before."""
        queued = await queue_in(self.session, message, at=self.at) is not None
        self.queued += int(queued)
        return queued

    def log(self, action: str, entity: str, entity_id: str, *,
            before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
        record(self.session, at=self.at, actor=self.actor, action=action, entity=entity,
               entity_id=entity_id, before=before, after=after)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession], *, at: datetime,
                      actor: str) -> AsyncIterator[Work]:
    """One transaction as a :class:`Work`; committed when the block ends without error."""
    async with sessions.begin() as session:
        yield Work(session, at, actor)


@asynccontextmanager
async def unit_of_work(services: Services, *, at: datetime, actor: str) -> AsyncIterator[Work]:
    """:func:`transaction` on the services' database, waking the sender once committed."""
    async with transaction(services.sessions, at=at, actor=actor) as work:
        yield work
    if work.queued:
        services.outbox_queued()


def today(services: Services, at: datetime) -> date:
    """The council's calendar date at ``at``: due dates and deadlines are local dates."""
    return local_date(at, services.framework.zone)


@dataclass(frozen=True)
class Submitted:
    """An audit just recorded, as the features that follow a submit see it."""

    audit: Audit
    case: Case
    submission: Submission
    action_ids: tuple[int, ...]
    actor: str


#: What a flow may do when an audit is submitted, inside the submit's own unit of work (so
#: the findings, alerts and plans it queues commit with the audit, or not at all). It
#: returns lines for the auditor's confirmation ("queued for ..."), in the order run.
SubmitHook = Callable[["Services", Work, Submitted], Awaitable[list[str]]]

