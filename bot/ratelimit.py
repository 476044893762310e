"""Sliding-window rate limits matching Teams' documented bot limits.

Per conversation: 7 a second, 8 per 2 seconds, 60 per 30 seconds and 1,800 an hour;
tenant-wide: a configured rate. Pure bookkeeping with an injected clock, so it is unit-testable without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence

Window = tuple[int, float]  # (max sends, seconds)

PER_CONVERSATION: tuple[Window, ...] = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))


class SlidingWindows:
    """Remembers send times per key and says how long to wait before the next."""

    def __init__(self, windows: Sequence[Window], margin: float = 0.02) -> None:
        self._windows = tuple(windows)
        self._margin = margin
        self._longest = max((w[1] for w in self._windows), default=0.0)
        self._sent: dict[str, deque[float]] = defaultdict(deque)
        self._held_until: dict[str, float] = {}

    def wait(self, key: str, now: float) -> float:
        """Seconds until one more send under ``key`` stays within every window."""
        held = self._held_until.get(key, 0.0) - now
        sent = self._sent.get(key)
        if not sent:
            return max(held, 0.0)
        while sent and sent[0] <= now - self._longest - self._margin:
            sent.popleft()
        delay = 0.0
        for limit, seconds in self._windows:
            if len(sent) >= limit:
                # The send `limit` places back must leave the window first.
                oldest_in_window = sent[len(sent) - limit]
                delay = max(delay, oldest_in_window + seconds + self._margin - now)
        return max(delay, held, 0.0)

    def record(self, key: str, now: float) -> None:
        self._sent[key].append(now)

    def forget(self, key: str, at: float) -> None:
        """Take back one send recorded at ``at`` (the service refused it)."""
        sent = self._sent.get(key)
        if sent:
            try:
                sent.remove(at)
            except ValueError:
                pass  # already out of every window

    def move(self, key: str, at: float, to: float) -> None:
        """Re-date one send recorded at ``at`` to ``to`` (later), keeping the order."""
        sent = self._sent.get(key)
        if not sent:
            return
        try:
            sent.remove(at)
        except ValueError:
            return
        sent.append(to)
        if len(sent) > 1 and sent[-2] > to:
            ordered = sorted(sent)
            sent.clear()
            sent.extend(ordered)

    def hold(self, key: str, until: float) -> None:
        """After a 429, keep ``key`` quiet until ``until``."""
        self._held_until[key] = max(self._held_until.get(key, 0.0), until)


class RateLimiter:
    """Awaitable gate combining per-conversation and tenant-wide windows."""

    def __init__(self, tenant_rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        per_second = max(1, int(tenant_rate))
        #: Seconds of the tenant-wide window (``per_second`` sends in it at most).
        self.tenant_window = per_second / tenant_rate
        self._per_conversation = SlidingWindows(PER_CONVERSATION)
        self._tenant = SlidingWindows(((per_second, self.tenant_window),))
        self._clock = clock
        self._lock = asyncio.Lock()

    async def acquire(self, conversation_key: str) -> float:
        """Wait until a message to ``conversation_key`` may go, then count it.

        Returns the time it was counted at, for :meth:`refund`.
        """
        while True:
            async with self._lock:
                now = self._clock()
                delay = max(
                    self._per_conversation.wait(conversation_key, now),
                    self._tenant.wait("tenant", now),
                )
                if delay <= 0:
                    self._per_conversation.record(conversation_key, now)
                    self._tenant.record("tenant", now)
                    return now
            await asyncio.sleep(delay)

    def completed(self, conversation_key: str, at: float) -> None:
        """The call counted at ``at`` has returned: count it at its end instead.

        Teams' per-conversation windows count arrivals, which lie somewhere between the
        count and the answer; one conversation's calls go one at a time, so a slow call
        followed by fast ones could put 8 arrivals in 2 s although the counts were 2.02 s
        apart. Counting each call at its end keeps every window whatever the latency.
        """
        self._per_conversation.move(conversation_key, at, self._clock())

    def refund(self, conversation_key: str, at: float) -> None:
        """The service refused the call (429, 503): give its place in the windows back.

        The fake connector counts only accepted calls against the limits (Teams does not
        document it either way); without a refund, 10% throttling and 2% errors cost 12%
        of the tenant rate. If Teams did count refusals, the cost of being wrong is a few
        more 429s, which are retried after Retry-After like any other.
        """
        self._per_conversation.forget(conversation_key, at)
        self._tenant.forget("tenant", at)

    def throttled(self, conversation_key: str, retry_after: float) -> None:
        """Teams said 429: stop sending to that conversation for a while."""
        self._per_conversation.hold(conversation_key, self._clock() + retry_after)
