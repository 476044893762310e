"""Opening 1:1 chats ahead of time, so a monthly fan-out costs one call per person.

After a roster sync links staff to their Teams accounts, each linked person who has no 1:1
chat with the bot yet gets one now (``create_conversation``, nothing is posted in it), and
its reference is stored. On allocation day the outbox then only sends: without this a
fan-out to 22 people made 20 new-chat calls on top of the 22 sends.

A chat that cannot be opened now is not a failure of anything: the outbox opens it at the
first message, as before. Paced by the same sliding windows as the sender, at half the
tenant rate, so a sender running beside it keeps the other half.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from bot.outbox import Messenger
from bot.ratelimit import RateLimiter
from bot.turn import DeliveryError
from store.directory import Directory, Target

log = logging.getLogger(__name__)

#: Answers worth waiting out and trying once more (throttled, briefly unavailable).
_AGAIN = frozenset({429, 503})


@dataclass
class ChatsOpened:
    """What :func:`open_personal_chats` did; ``failed`` maps staff ids to the reason."""

    opened: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


async def open_personal_chats(directory: Directory, messenger: Messenger, *, tenant_rate: float,
                              actor: str, concurrency: int = 4,
                              attempts: int = 3) -> ChatsOpened:
    """Open a 1:1 chat for every linked member of staff who has none yet."""
    todo = await directory.staff_without_chat()
    report = ChatsOpened()
    if not todo:
        return report
    limiter = RateLimiter(max(1.0, tenant_rate / 2))
    queue: asyncio.Queue[tuple[str, Target]] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)

    async def one(staff_id: str, target: Target) -> None:
        assert target.teams_user_id is not None
        if not (target.service_url and target.bot_id):
            report.failed[staff_id] = "no conversation with the bot to borrow a service URL from"
            return
        for attempt in range(1, attempts + 1):
            key = f"create:{target.teams_user_id}"
            counted = await limiter.acquire(key)
            try:
                reference = await messenger.create_personal(
                    service_url=target.service_url, tenant_id=target.tenant_id,
                    bot_id=target.bot_id, user_id=target.teams_user_id,
                    aad_object_id=target.aad_object_id)
            except DeliveryError as err:
                if err.status in _AGAIN:
                    limiter.refund(key, counted)
                if err.status in _AGAIN and attempt < attempts:
                    await asyncio.sleep(err.retry_after or float(attempt))
                    continue
                report.failed[staff_id] = (f"HTTP {err.status}: {err.reason}" if err.status
                                           else err.reason)
                return
            await directory.save_conversation(
                conversation_id=reference["conversation"]["id"], kind="personal",
                service_url=target.service_url, tenant_id=target.tenant_id,
                reference=reference, teams_user_id=target.teams_user_id,
                aad_object_id=target.aad_object_id, actor=actor)
            report.opened.append(staff_id)
            return

    async def worker() -> None:
        while not queue.empty():
            staff_id, target = queue.get_nowait()
            try:
                await one(staff_id, target)
            except Exception:  # one person's chat never stops the others'
                log.exception("opening a 1:1 chat failed", extra={"staff_id": staff_id})
                report.failed[staff_id] = "unexpected error (see the log)"

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(todo)))))
    report.opened.sort()
    log.info("1:1 chats opened ahead of time",
             extra={"opened": len(report.opened), "failed": len(report.failed)})
    return report
