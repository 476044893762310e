"""The outbox sender: drains queued proactive messages into Teams.

One path for every proactive message (EXAMPLES habit 9): claim due rows, resolve where
each goes (creating the 1:1 chat when none exists), wait for the rate limiter, send,
and settle the row: sent, retried later with backoff and jitter (429, 412, 502, 503,
504 and connection failures, honouring Retry-After), failed with the reason, or held
while its recipient is not linked to Teams (linking them releases it).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.ratelimit import RateLimiter
from bot.turn import DeliveryError, Member
from store.directory import Directory, Target
from store.outbox import RETRYABLE, Claimed, OutboxStore

log = logging.getLogger(__name__)

#: Answers that say the connector did not take the call: it used none of the rate budget.
REFUSED = frozenset({429, 503})
#: How long a person not found on any roster is not looked for again.
LOOKUP_AGAIN_SECONDS = 600.0


class Messenger(Protocol):
    async def send(self, reference: dict[str, Any], message: str | dict[str, Any]) -> str: ...

    async def member(self, reference: dict[str, Any], user_id: str) -> Member | None: ...

    async def create_personal(
        self, *, service_url: str, tenant_id: str | None, bot_id: str, user_id: str,
        aad_object_id: str | None = None,
    ) -> dict[str, Any]: ...


@dataclass
class SenderStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    throttled: int = 0
    held: int = 0


class OutboxSender:
    """Delivers outbox rows; run one per service instance."""

    def __init__(
        self,
        outbox: OutboxStore,
        directory: Directory,
        messenger: Messenger,
        *,
        tenant_rate: float = 25.0,
        max_attempts: int = 8,
        concurrency: int = 8,
        poll_seconds: float = 1.0,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self._outbox = outbox
        self._directory = directory
        self._messenger = messenger
        self._limiter = RateLimiter(tenant_rate)
        self._max_attempts = max_attempts
        self._concurrency = max(1, concurrency)
        self._poll = poll_seconds
        self._base = base_backoff
        self._cap = max_backoff
        self._clock = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._retry_due: list[float] = []  # monotonic times retried messages fall due
        self._not_found: dict[str, float] = {}  # staff id -> monotonic time last looked for
        self.stats = SenderStats()

    def _next_wait(self) -> float:
        """Seconds to sleep when idle: the poll interval, or less if a retry falls due."""
        now = time.monotonic()
        while self._retry_due and self._retry_due[0] <= now:
            heapq.heappop(self._retry_due)  # due already: the claim just made saw it
        if self._retry_due:
            return min(self._poll, self._retry_due[0] - now)
        return self._poll

    def notify(self) -> None:
        """Something was queued in this process: drain now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until ``stop`` is set; survives any single failure."""
        while not stop.is_set():
            try:
                busy = await self.drain_once()
            except Exception:
                log.exception("outbox drain failed; retrying at next poll")
                busy = 0
            if busy:
                continue
            self._wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waiters, timeout=self._next_wait(),
                               return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def drain_once(self, limit: int = 200) -> int:
        """Claim and deliver one batch; returns how many rows were processed."""
        claimed = await self._outbox.claim(self._clock(), limit)
        if not claimed:
            return 0
        # Messages for one recipient go in order, one at a time; recipients in parallel.
        by_recipient: dict[str, list[Claimed]] = defaultdict(list)
        for item in claimed:
            by_recipient[item.staff_id or f"conv:{item.conversation_id}"].append(item)
        queue: asyncio.Queue[list[Claimed]] = asyncio.Queue()
        for items in by_recipient.values():
            queue.put_nowait(items)

        async def worker() -> None:
            while not queue.empty():
                items = queue.get_nowait()
                for n, item in enumerate(items):
                    if not await self._deliver(item):
                        # Keep the recipient's order: the rest wait for this one.
                        await self._outbox.release([later.id for later in items[n + 1:]])
                        break

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, queue.qsize()))))
        return len(claimed)

    async def _target(self, item: Claimed) -> Target | None:
        if item.staff_id is not None:
            target = await self._directory.target_for_staff(item.staff_id)
            if target is None:
                target = await self._look_up(item.staff_id)
            return target
        assert item.conversation_id is not None
        return await self._directory.target_for_conversation(item.conversation_id)

    async def _look_up(self, staff_id: str) -> Target | None:
        """Someone not linked to Teams yet: look for them (by email, which Teams accepts as
        a member id) on the roster of every team the bot is in, and link them if found.

        Not found: not looked for again for a while, so a fan-out to many unlinked people
        does not turn into a roster call per message.
        """
        seen = self._not_found.get(staff_id)
        if seen is not None and time.monotonic() - seen < LOOKUP_AGAIN_SECONDS:
            return None
        staff = await self._directory.staff(staff_id)
        if staff is None or not staff.active or not staff.email:
            return None
        for conv in await self._directory.team_conversations():
            await self._limiter.acquire(f"lookup:{conv.id}")
            member = await self._messenger.member(conv.reference, staff.email)
            if member is None:
                continue
            addresses = " ".join(a for a in (member.email, member.user_principal_name) if a)
            await self._directory.link_members([(member.id, member.aad_object_id, addresses)],
                                               actor="outbox:lookup")
            target = await self._directory.target_for_staff(staff_id)
            if target is not None:
                log.info("linked on demand from a team roster", extra={"staff_id": staff_id})
                return target
        self._not_found[staff_id] = time.monotonic()
        return None

    async def _deliver(self, item: Claimed) -> bool:
        """Deliver one message; False when it was put back for a retry."""
        target = await self._target(item)
        if target is None and item.staff_id is not None:
            # Not linked to Teams yet: held (not failed) until linking releases it.
            if await self._outbox.hold(item.id, item.staff_id):
                self.stats.held += 1
                log.info("outbox message %s held: staff %s is not linked to Teams yet",
                         item.id, item.staff_id)
                return True
            return False  # linked since it was claimed: due again, the rest wait behind it
        if target is None:
            await self._fail(item, f"unknown conversation {item.conversation_id}")
            return True
        counted: tuple[str, float] | None = None  # the call in flight, as the limiter counted it
        try:
            reference = target.reference
            if reference is None:
                if not (target.service_url and target.bot_id and target.teams_user_id):
                    await self._fail(item, "no conversation with the bot yet (install it first)")
                    return True
                # Keyed by the person: one shared key put every create in one conversation's
                # windows (60 per 30 s), capping new 1:1 chats at 2 a second.
                create_key = f"create:{target.teams_user_id}"
                counted = (create_key, await self._limiter.acquire(create_key))
                reference = await self._messenger.create_personal(
                    service_url=target.service_url, tenant_id=target.tenant_id,
                    bot_id=target.bot_id, user_id=target.teams_user_id,
                    aad_object_id=target.aad_object_id,
                )
                counted = None
                await self._directory.save_conversation(
                    conversation_id=reference["conversation"]["id"], kind="personal",
                    service_url=target.service_url, tenant_id=target.tenant_id,
                    reference=reference, teams_user_id=target.teams_user_id,
                    aad_object_id=target.aad_object_id, actor="outbox",
                )
            conversation_id = str(reference["conversation"]["id"])
            counted = (conversation_id, await self._limiter.acquire(conversation_id))
            activity_id = await self._messenger.send(reference, item.message)
        except DeliveryError as err:
            if counted is not None and err.status in REFUSED:
                self._limiter.refund(*counted)
            return await self._delivery_failed(item, err, target)
        await self._outbox.mark_sent(item.id, conversation_id, activity_id)
        self.stats.sent += 1
        return True

    async def _delivery_failed(self, item: Claimed, err: DeliveryError, target: Target) -> bool:
        """Settle a failed send: True when it is final (failed), False when retried."""
        retryable = err.status in RETRYABLE or err.status is None
        reason = f"HTTP {err.status}: {err.reason}" if err.status else err.reason
        if err.status == 429:
            self.stats.throttled += 1
            if target.reference:
                self._limiter.throttled(str(target.reference["conversation"]["id"]),
                                        err.retry_after or self._base)
        attempts = item.attempts + 1
        if not retryable or attempts >= self._max_attempts:
            await self._fail(item, f"gave up after {attempts} attempt(s): {reason}"
                             if retryable else f"refused: {reason}")
            return True
        delay = self.backoff(attempts, err.retry_after)
        self.stats.retried += 1
        log.info("outbox message %s will be retried in %.1fs (%s)", item.id, delay, reason)
        await self._outbox.mark_retry(item.id, self._clock() + timedelta(seconds=delay), reason)
        # Wake up when it falls due rather than at the next poll after it.
        heapq.heappush(self._retry_due, time.monotonic() + delay + 0.01)
        return False

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, never sooner than Retry-After."""
        exp = min(self._cap, self._base * (2 ** (attempts - 1)))
        delay = self._rng.uniform(exp / 2, exp)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    async def _fail(self, item: Claimed, reason: str) -> None:
        self.stats.failed += 1
        log.warning("outbox message %s failed: %s", item.id, reason)
        if await self._outbox.mark_failed(item.id, reason):
            self.notify()  # its fallback messages go out now, not at the next poll
