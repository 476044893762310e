"""The outbox sender: drains queued proactive messages into Teams.

One path for every proactive message (EXAMPLES habit 9): claim due rows, resolve where
each goes (creating the 1:1 chat when none exists), wait for the rate limiter, send,
and settle the row: sent, retried later with backoff and jitter (429, 412, 502, 503,
504 and connection failures, honouring Retry-After), failed with the reason, or held
while its recipient is not linked to Teams (linking them releases it).

One sender for the tenant, whatever the number of instances: every instance runs an
``OutboxSender``, but only the one holding the sender lock (store/sender_lock.py: a
PostgreSQL advisory lock) claims and sends; the others stand by and try for the lock every
``standby_poll`` seconds. So the tenant rate (``RateLimiter``) is one budget, not one per
instance. A new sender waits one tenant window (so the last sends of the one before have
left it), takes back every row the stopped sender held (``OutboxStore.take_over``), and
goes on. Each claim carries the sender's owner token (instance and term), and each send is
preceded by ``start_send``, which renews the row's lease only while the claim is still
this sender's: a sender that lost the lock (its connection dropped) sends nothing more
than what was already in flight. Delivery is at least once; a duplicate is possible only
for a message whose call to Teams was in flight when its sender died (at most
``concurrency`` of them), and those are counted (``SenderStats.taken_over_in_flight``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import random
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.ratelimit import RateLimiter
from bot.turn import DeliveryError, Member
from store.directory import Directory, Target
from store.outbox import RETRYABLE, Claimed, OutboxStore
from store.sender_lock import SenderLock

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
    #: This instance holds the sender lock and delivers (False: standing by).
    leader: bool = False
    #: Times this instance became the sender, and rows it took back from a stopped one.
    takeovers: int = 0
    taken_over: int = 0
    #: Of those, rows whose send was in flight when the other sender stopped: each may
    #: reach its recipient twice (the at-least-once window).
    taken_over_in_flight: int = 0
    #: Settles refused because another sender had taken the row over.
    lost_claims: int = 0


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
        lock: SenderLock | None = None,
        standby_poll: float = 1.0,
        lease_seconds: float = 120.0,
    ) -> None:
        """``lock`` elects the one sender among instances (None: this one always sends)."""
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
        self._lock = lock
        self._standby_poll = standby_poll
        self._lease = lease_seconds
        self._instance = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._term = 0
        self._deposed = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self.stats = SenderStats()

    @property
    def owner(self) -> str:
        """The token this sender claims rows with: the instance and its term as sender."""
        return f"{self._instance}/{self._term}"

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
        """Deliver (while this instance is the sender) until ``stop`` is set.

        Survives any single failure; lets go of the sender lock when it stops.
        """
        self._stop = stop
        try:
            while not stop.is_set():
                if not await self._lead(stop):
                    await _wait(stop, self._standby_poll)
                    continue
                try:
                    busy = await self.drain_once()
                except Exception:
                    log.exception("outbox drain failed; retrying at next poll")
                    busy = 0
                if self._deposed.is_set():
                    await self._step_down()
                    continue
                if busy:
                    continue
                self._wake.clear()
                waiters = [asyncio.ensure_future(stop.wait()),
                           asyncio.ensure_future(self._wake.wait()),
                           asyncio.ensure_future(self._deposed.wait())]
                await asyncio.wait(waiters, timeout=self._next_wait(),
                                   return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
        finally:
            await self._step_down()

    async def _lead(self, stop: asyncio.Event) -> bool:
        """Be the sender: True when this instance holds the lock and has taken over."""
        if self.stats.leader:
            return True
        if self._lock is not None:
            if not await self._lock.acquire():
                return False
            self._deposed.clear()
            self._watch = asyncio.create_task(self._watch_lock(), name="outbox-sender-lock")
            # The sender before may have sent until a moment ago: let its last sends leave
            # the tenant window, so the rate holds across the handover too.
            await _wait(stop, self._limiter.tenant_window)
        self._term += 1
        try:
            took = await self._outbox.take_over(self.owner)
        except Exception:
            log.exception("could not take over the outbox; standing by")
            await self._step_down()
            return False
        self.stats.leader = True
        self.stats.takeovers += 1
        self.stats.taken_over += took.released
        self.stats.taken_over_in_flight += len(took.in_flight)
        if took.in_flight:
            log.warning("outbox sender: %d message(s) were in flight when the previous sender "
                        "stopped and will be sent again (each may arrive twice): ids %s",
                        len(took.in_flight), ",".join(map(str, took.in_flight[:50])))
        log.info("outbox sender: this instance now delivers (took back %d message(s))",
                 took.released, extra={"owner": self.owner})
        return True

    async def _watch_lock(self) -> None:
        """While the sender, check the lock every second; a lost lock deposes at once."""
        assert self._lock is not None
        while True:
            await asyncio.sleep(1.0)
            if not await self._lock.check():
                self._deposed.set()
                return

    async def _step_down(self) -> None:
        was = self.stats.leader
        self.stats.leader = False
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
        if self._lock is not None:
            await self._lock.release()
        if was:
            log.info("outbox sender: this instance stopped delivering")

    async def drain_once(self, limit: int = 200) -> int:
        """Claim and deliver one batch; returns how many rows were processed."""
        claimed = await self._outbox.claim(self._clock(), limit, owner=self.owner,
                                           lease_seconds=self._lease)
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
                    if self._halted():
                        # The lock was lost or the service is stopping: give the rest
                        # back for whoever sends next, untouched.
                        await self._outbox.release([i.id for i in items[n:]], owner=self.owner)
                        break
                    if not await self._deliver(item):
                        # Keep the recipient's order: the rest wait for this one.
                        await self._outbox.release([later.id for later in items[n + 1:]],
                                                   owner=self.owner)
                        break

        outcomes = await asyncio.gather(
            *(worker() for _ in range(min(self._concurrency, queue.qsize()))),
            return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            # Every worker has stopped: give back what this batch still holds (settled rows
            # are not 'sending' and stay as they are) rather than leave it for the lease.
            with contextlib.suppress(Exception):
                await self._outbox.release([item.id for item in claimed], owner=self.owner)
            raise failures[0]
        return len(claimed)

    def _halted(self) -> bool:
        """Stop taking messages of the batch: the lock was lost, or the service is stopping
        (what is in flight finishes; the rest is released for whoever sends next)."""
        return self._deposed.is_set() or (self._stop is not None and self._stop.is_set())

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
        """Deliver one message; False when it was put back for a retry (or is not ours)."""
        owner = self.owner
        target = await self._target(item)
        if target is None and item.staff_id is not None:
            # Not linked to Teams yet: held (not failed) until linking releases it.
            if await self._outbox.hold(item.id, item.staff_id, owner=self.owner):
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
                at = await self._slot_if_ours(item, create_key)
                if at is None:
                    return False
                counted = (create_key, at)
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
            # (Checked once per message: a chat just created was checked before its create,
            # and the send is counted in flight from then.)
            if target.reference is not None:
                at = await self._slot_if_ours(item, conversation_id)
                if at is None:
                    return False
            else:
                at = await self._limiter.acquire(conversation_id)
            counted = (conversation_id, at)
            activity_id = await self._messenger.send(reference, item.message)
            self._limiter.completed(*counted)
        except DeliveryError as err:
            if counted is not None and err.status in REFUSED:
                self._limiter.refund(*counted)
            elif counted is not None:
                self._limiter.completed(*counted)
            return await self._delivery_failed(item, err, target)
        if await self._outbox.mark_sent(item.id, conversation_id, activity_id, owner=owner):
            self.stats.sent += 1
        else:
            self._lost_claim(item, "after Teams took it (it may arrive twice)")
        return True

    async def _slot_if_ours(self, item: Claimed, key: str) -> float | None:
        """The rate slot for a call to Teams, once the claim is known to be still this
        sender's; None (slot given back) when another sender took the row over.

        The check (``start_send``: renew the lease, mark the send started; a row with a
        started send is the only kind that may reach its recipient twice if this sender
        dies now) runs while waiting for the slot, not between the slot and the call: a
        database write there delays some calls more than others after they were counted,
        so arrivals at Teams bunch past the tenant rate (measured over 1,000 messages on
        SQLite: 151 429s for the limits, against 26 with the check here), and not before
        the wait either, where each write adds to every call's time (6 s over 1,000
        messages with 500 new chats).
        The price is a wider count of what was in flight at a crash: also rows still
        waiting for their slot (at most the concurrency).
        """
        ours, at = await asyncio.gather(
            self._outbox.start_send(item.id, owner=self.owner, now=self._clock(),
                                    lease_seconds=self._lease),
            self._limiter.acquire(key))
        if ours:
            return at
        self._limiter.refund(key, at)
        self._lost_claim(item, "before sending")
        return None

    def _lost_claim(self, item: Claimed, when: str) -> None:
        self.stats.lost_claims += 1
        log.warning("outbox message %s was taken over by another sender %s", item.id, when)

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
        if not await self._outbox.mark_retry(item.id, self._clock() + timedelta(seconds=delay),
                                             reason, owner=self.owner):
            self._lost_claim(item, "while retrying")
            return False
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
        queued = await self._outbox.mark_failed(item.id, reason, owner=self.owner)
        if queued is None:
            self._lost_claim(item, "while failing it")
            return
        self.stats.failed += 1
        log.warning("outbox message %s failed: %s", item.id, reason)
        if queued:
            self.notify()  # its fallback messages go out now, not at the next poll


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
