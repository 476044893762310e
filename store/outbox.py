"""The persisted outbox: any process queues, the running service delivers.

A flow hands the outbox a :class:`Message` (who it is for, what it says, and a dedupe key
that makes a replayed job harmless) inside the flow's own transaction, so a message is
queued exactly when the change it announces is committed.

A row's status is ``pending`` (due, or waiting for a retry), ``sending`` (leased to a
sender), ``sent``, ``failed`` (with the reason) or ``held``: a message to a member of staff
who is not linked to a Teams user yet is held, not failed, and goes back to ``pending`` in
the same transaction that links them (:func:`release_held_in`), so it is sent as soon as
they can be reached.

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

from store.models import OutboxMessage, Staff

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
    #: Queued instead if this message cannot be delivered (refused, retries exhausted, or
    #: the person cannot be reached in Teams): who must hear that it did not arrive.
    fallback: tuple[Message, ...] = ()

    def __post_init__(self) -> None:
        if (self.staff_id is None) == (self.conversation_id is None):
            raise ValueError("a message goes to exactly one of staff_id or conversation_id")
        if any(f.fallback for f in self.fallback):
            raise ValueError("a fallback message has no fallback of its own")

    def packed_fallback(self) -> list[dict[str, Any]] | None:
        if not self.fallback:
            return None
        return [{"staff_id": f.staff_id, "conversation_id": f.conversation_id,
                 "body": f.body, "dedupe_key": f.dedupe_key} for f in self.fallback]

    @property
    def recipient(self) -> str:
        """``staff:<id>`` or ``conv:<id>``: messages to one recipient keep their order."""
        if self.staff_id is not None:
            return f"staff:{self.staff_id}"
        return f"conv:{self.conversation_id}"


HELD_REASON = "held: staff {staff_id} is not linked to a Teams user yet"


async def release_held_in(session: AsyncSession, staff_ids: list[str]) -> int:
    """Put the held messages of these (now linked) staff back in the queue, in the caller's
    transaction (the one that links them); returns how many were released."""
    if not staff_ids:
        return 0
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == "held", OutboxMessage.staff_id.in_(staff_ids))
        .values(status="pending", next_attempt_at=None, lease_until=None, last_error=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


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
        "fallback": message.packed_fallback(),
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
    held: int = 0


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

    async def hold(self, message_id: int, staff_id: str, *, owner: str | None = None) -> bool:
        """Hold a claimed message until its recipient is linked; False (and the message is
        due again) when they have been linked since it was claimed.

        The staff row is read FOR UPDATE: a link committing meanwhile either happens first
        (and this sees it) or waits for this hold (and its release then finds the row).

        A message with a fallback (a safeguarding alert) must not wait silently: holding it
        queues its fallback messages in the same transaction, as giving up would (their
        dedupe keys keep a later failure from queuing them twice).
        """
        now = self._clock()
        async with self._sessions.begin() as session:
            linked = await session.scalar(
                select(Staff.teams_user_id).where(Staff.staff_id == staff_id).with_for_update())
            values: dict[str, Any] = (
                {"status": "pending", "lease_until": None} if linked else
                {"status": "held", "lease_until": None,
                 "last_error": HELD_REASON.format(staff_id=staff_id)})
            values |= {"claimed_by": None, "send_started_at": None}
            mine = [] if owner is None else [OutboxMessage.claimed_by == owner]
            fallback = (await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.status == "sending",
                       *mine)
                .values(**values)
                .returning(OutboxMessage.fallback)
            )).scalar_one_or_none()
            if not linked:
                for f in fallback or []:
                    await queue_in(session, Message(f["body"], f.get("staff_id"),
                                                    f.get("conversation_id"),
                                                    f.get("dedupe_key")), at=now)
        return not linked

    async def held_by_staff(self) -> dict[str, int]:
        """How many messages are held for each member of staff (not linked yet)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(OutboxMessage.staff_id, func.count())
                .where(OutboxMessage.status == "held").group_by(OutboxMessage.staff_id))
            return {str(sid): int(n) for sid, n in rows.all() if sid is not None}

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
                          owner: str | None = None) -> int | None:
        """Give up on a message; its fallback messages (if any) are queued in the same
        transaction. ``owner`` None is an operator's doing (no claim checked).

        Returns how many fallback messages were queued, or None when the claim was no longer
        ``owner``'s (another sender took the row over: nothing changed).
        """
        now = self._clock()
        values: dict[str, Any] = dict(
            status="failed", lease_until=None, claimed_by=None, send_started_at=None,
            attempts=OutboxMessage.attempts + (1 if count_attempt else 0), last_error=error)
        where = [OutboxMessage.id == message_id]
        if owner is not None:
            where += [OutboxMessage.status == "sending", OutboxMessage.claimed_by == owner]
        async with self._sessions.begin() as session:
            row = (await session.execute(
                update(OutboxMessage).where(*where).values(**values)
                .returning(OutboxMessage.fallback)
            )).one_or_none()
            if row is None:
                return None
            queued = 0
            for f in row[0] or []:
                message = Message(f["body"], f.get("staff_id"), f.get("conversation_id"),
                                  f.get("dedupe_key"))
                queued += await queue_in(session, message, at=now) is not None
            return queued

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
            held=counts.get("held", 0),
        )
