"""The persisted outbox: any process queues, the running service delivers.

A flow hands the outbox a :class:`Message` (who it is for, what it says, and a dedupe key
that makes a replayed job harmless) inside the flow's own transaction, so a message is
queued exactly when the change it announces is committed.

Rows are claimed with a conditional UPDATE (status and lease checked in the WHERE
clause) that stamps the claiming sender in ``claimed_by``; every later change of a claimed
row (send started, sent, retried, failed, released) is conditional on that owner, so a
sender that lost its claim changes nothing and learns so (the functions return False).
Only the elected sender (store/sender_lock.py) claims; when it dies the next one
:meth:`OutboxStore.take_over` the rows it held at once, without waiting for their lease.
A fresh message has no ``next_attempt_at``: it is due at once, whatever clock queued it
(a job replayed for a day ahead of the machine's clock still delivers now).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from store.models import OutboxMessage

RETRYABLE = frozenset({429, 412, 502, 503, 504})


def encode(message: str | dict[str, Any]) -> dict[str, Any]:
    """Store a text or an Adaptive Card in one JSON shape."""
    return {"text": message} if isinstance(message, str) else {"card": message}


def decode(activity: dict[str, Any]) -> str | dict[str, Any]:
    return activity["text"] if "text" in activity else activity["card"]


@dataclass(frozen=True)
class Message:
    """What a flow hands the outbox: one text or card for one person or conversation."""

    body: str | dict[str, Any]
    staff_id: str | None = None
    conversation_id: str | None = None
    dedupe_key: str | None = None
    not_before: datetime | None = None

    def __post_init__(self) -> None:
        if (self.staff_id is None) == (self.conversation_id is None):
            raise ValueError("a message goes to exactly one of staff_id or conversation_id")

    @property
    def recipient(self) -> str:
        """``staff:<id>`` or ``conv:<id>``: messages to one recipient keep their order."""
        if self.staff_id is not None:
            return f"staff:{self.staff_id}"
        return f"conv:{self.conversation_id}"


async def queue_in(session: AsyncSession, message: Message, *, at: datetime) -> int | None:
    """Queue inside the caller's transaction; returns None when the dedupe key exists.

    ``at`` is when the message was decided (the flow's clock). A dedupe key makes re-running
    a job harmless: the same message is never queued twice.
    """
    values = {
        "recipient": message.recipient,
        "staff_id": message.staff_id,
        "conversation_id": message.conversation_id,
        "activity": encode(message.body),
        "dedupe_key": message.dedupe_key,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": message.not_before,
        "created_at": at,
    }
    # INSERT .. ON CONFLICT DO NOTHING rather than a savepoint: a SAVEPOINT opening a
    # transaction on SQLite is committed by its RELEASE (the driver emits no BEGIN for
    # it), which would let a queued message outlive a rolled-back change. The conflict
    # clause also settles two processes queueing the same key at once.
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    stmt = (insert(OutboxMessage).values(**values)
            .on_conflict_do_nothing(index_elements=[OutboxMessage.dedupe_key])
            .returning(OutboxMessage.id))
    return await session.scalar(stmt)


@dataclass(frozen=True)
class Claimed:
    id: int
    staff_id: str | None
    conversation_id: str | None
    message: str | dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class TakeOver:
    """What a new sender took back: how many rows, and which had a send in flight."""

    released: int
    in_flight: tuple[int, ...]


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    sending: int
    sent: int
    failed: int
    oldest_pending_at: datetime | None
    failures: list[tuple[int, str | None, str | None]]


class OutboxStore:
    """Queue, claim and settle outbox rows; times come from the service's clock."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    async def queue(self, *, message: str | dict[str, Any], staff_id: str | None = None,
                    conversation_id: str | None = None, dedupe_key: str | None = None,
                    not_before: datetime | None = None) -> int | None:
        """Queue one message in a transaction of its own (operations and tests)."""
        async with self._sessions.begin() as session:
            return await queue_in(session, Message(message, staff_id, conversation_id,
                                                   dedupe_key, not_before), at=self._clock())

    async def claim(self, now: datetime, limit: int, *, owner: str | None = None,
                    lease_seconds: float = 120) -> list[Claimed]:
        """Take up to ``limit`` due messages, oldest first, claimed by ``owner``.

        A message waits while an earlier one to the same recipient is undelivered, so a
        retried message never lets a later one overtake it. A row whose lease ran out is
        due again (its sender stalled); :meth:`start_send` renews the lease per message.
        """
        earlier = aliased(OutboxMessage)
        blocked = (
            select(earlier.id)
            .where(
                earlier.recipient == OutboxMessage.recipient,
                earlier.id < OutboxMessage.id,
                earlier.status.in_(("pending", "sending")),
            )
            .exists()
        )
        due = and_(
            or_(
                and_(OutboxMessage.status == "pending",
                     or_(OutboxMessage.next_attempt_at.is_(None),
                         OutboxMessage.next_attempt_at <= now)),
                and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
            ),
            ~blocked,
        )
        lease_until = now + timedelta(seconds=lease_seconds)
        async with self._sessions.begin() as session:
            candidates = (
                await session.execute(
                    select(OutboxMessage.id).where(due).order_by(OutboxMessage.id).limit(limit)
                )
            ).scalars().all()
        if not candidates:
            return []
        # One conditional UPDATE for the batch (``due`` is checked again per row, so a row
        # another sender took meanwhile is skipped) and RETURNING what this one won: a
        # transaction per row used to leave the rate limit idle for ~0.4 s per batch.
        async with self._sessions.begin() as session:
            rows = (
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(candidates), due)
                    .values(status="sending", lease_until=lease_until, claimed_by=owner,
                            send_started_at=None)
                    .returning(OutboxMessage.id, OutboxMessage.staff_id,
                               OutboxMessage.conversation_id, OutboxMessage.activity,
                               OutboxMessage.attempts)
                    .execution_options(synchronize_session=False)
                )
            ).all()
        return sorted(
            (Claimed(r.id, r.staff_id, r.conversation_id, decode(r.activity), r.attempts)
             for r in rows),
            key=lambda c: c.id,
        )

    async def _settle(self, message_id: int, owner: str, **values: Any) -> bool:
        """Change a claimed row only while ``owner`` still holds the claim."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending",
                       OutboxMessage.claimed_by == owner)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)

    async def start_send(self, message_id: int, *, owner: str, now: datetime,
                         lease_seconds: float = 120) -> bool:
        """Just before the call to Teams: still ours? Then renew the lease and say so.

        False means another sender took the row over: do not send it.
        """
        return await self._settle(message_id, owner, send_started_at=now,
                                  lease_until=now + timedelta(seconds=lease_seconds))

    async def mark_sent(self, message_id: int, conversation_id: str, activity_id: str, *,
                        owner: str) -> bool:
        return await self._settle(
            message_id, owner, status="sent", sent_at=self._clock(), lease_until=None,
            claimed_by=None, send_started_at=None, attempts=OutboxMessage.attempts + 1,
            sent_conversation_id=conversation_id, sent_activity_id=activity_id,
            last_error=None)

    async def mark_retry(self, message_id: int, at: datetime, error: str, *,
                         owner: str) -> bool:
        return await self._settle(
            message_id, owner, status="pending", next_attempt_at=at, lease_until=None,
            claimed_by=None, send_started_at=None, attempts=OutboxMessage.attempts + 1,
            last_error=error)

    async def release(self, message_ids: list[int], *, owner: str) -> None:
        """Give claimed messages back untouched (an earlier one to them must go first)."""
        if not message_ids:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(message_ids), OutboxMessage.status == "sending",
                       OutboxMessage.claimed_by == owner)
                .values(status="pending", lease_until=None, claimed_by=None,
                        send_started_at=None)
                .execution_options(synchronize_session=False)
            )

    async def mark_failed(self, message_id: int, error: str, count_attempt: bool = True, *,
                          owner: str | None = None) -> bool:
        """Give up on a message; ``owner`` None is an operator's doing (no claim checked)."""
        values: dict[str, Any] = dict(
            status="failed", lease_until=None, claimed_by=None, send_started_at=None,
            attempts=OutboxMessage.attempts + (1 if count_attempt else 0), last_error=error)
        if owner is not None:
            return await self._settle(message_id, owner, **values)
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values)
                .execution_options(synchronize_session=False))
            return bool(result.rowcount)

    async def take_over(self, owner: str) -> TakeOver:
        """The new elected sender takes back every row another sender held, at once.

        Only the holder of the sender lock calls this, so any claim not ``owner``'s belongs
        to a sender that stopped (or lost the lock and is fenced off by ``claimed_by``).
        Rows whose send had started may already be in the recipient's chat: they are
        counted and their ids returned, and they are sent again (at least once).
        """
        foreign = and_(OutboxMessage.status == "sending",
                       or_(OutboxMessage.claimed_by.is_(None),
                           OutboxMessage.claimed_by != owner))
        async with self._sessions.begin() as session:
            held = (await session.execute(
                select(OutboxMessage.id, OutboxMessage.send_started_at)
                .where(foreign).with_for_update()
            )).all()
            if held:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_([r.id for r in held]), foreign)
                    .values(status="pending", lease_until=None, claimed_by=None,
                            send_started_at=None)
                    .execution_options(synchronize_session=False)
                )
        return TakeOver(released=len(held),
                        in_flight=tuple(sorted(r.id for r in held
                                               if r.send_started_at is not None)))

    async def retry_failed(self) -> int:
        """Put every failed message back in the queue (after the cause is fixed)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == "failed")
                .values(status="pending", attempts=0, next_attempt_at=None)
            )
            return int(result.rowcount or 0)

    async def status(self, failures: int = 20) -> OutboxStatus:
        async with self._sessions() as session:
            counts = dict(
                (
                    await session.execute(
                        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                    )
                ).all()
            )
            oldest = await session.scalar(
                select(func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.status.in_(("pending", "sending"))
                )
            )
            failed_rows = (
                await session.execute(
                    select(OutboxMessage.id, OutboxMessage.staff_id, OutboxMessage.last_error)
                    .where(OutboxMessage.status == "failed")
                    .order_by(OutboxMessage.id.desc())
                    .limit(failures)
                )
            ).all()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return OutboxStatus(
            pending=counts.get("pending", 0),
            sending=counts.get("sending", 0),
            sent=counts.get("sent", 0),
            failed=counts.get("failed", 0),
            oldest_pending_at=oldest,
            failures=[(r[0], r[1], r[2]) for r in failed_rows],
        )
