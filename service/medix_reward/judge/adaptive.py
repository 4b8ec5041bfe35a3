"""An adaptive limit on the calls in flight to one judge replica: slow start, then additive increase and
multiplicative decrease (TCP's congestion control, as the concurrency-limits libraries apply it to RPCs).

A fixed number of calls in flight with a fixed timeout collapses when the judge is slower than assumed:
every call queues inside the judge, every attempt outlives its timeout and the retries send everything
again (seen: 24 distinct pairs with the CPU Qwen judge, no verdict after 121 s). Here a call that comes
back within the target latency lets the limit grow (by one per call until the first sign of overload,
then by one per window), and a call that comes back slower, times out or is refused for overload halves
it, once: calls sent before that cut say nothing about the new limit, so they cannot cut it again. The
judge then holds about what it serves within the target, and a slower judge gives fewer verdicts per
second, never none. It starts at 4: a fast judge doubles that every round trip, and a slow one is not
sent a first wave that outlives its timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class AdaptiveLimit:
    def __init__(self, max_limit: int, target_latency_s: float, initial: int = 4, min_limit: int = 1):
        self.max_limit = max_limit
        self.min_limit = min_limit
        self.target_latency_s = target_latency_s
        self.limit = float(max(min_limit, min(initial, max_limit)))
        self.inflight = 0
        self._slow_start = True
        self._last_decrease = float("-inf")
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(not waiter.done() for waiter in self._waiters)

    async def acquire(self) -> None:
        while self.inflight >= int(self.limit):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # it was handed a free slot it will not take: pass it on
                raise
        self.inflight += 1

    def release(self, sent_at: float, overloaded: bool) -> None:
        """Give back the slot of a call sent at `sent_at` (time.monotonic()): `overloaded` for a timeout, 429
        or 503."""
        self.inflight -= 1
        now = time.monotonic()
        if overloaded or now - sent_at > self.target_latency_s:
            if sent_at > self._last_decrease:
                self.limit = max(self.min_limit, self.limit / 2)
                self._last_decrease = now
                self._slow_start = False
        elif self.inflight + 1 >= int(self.limit):  # grow only a limit that is in use
            step = 1.0 if self._slow_start else 1.0 / self.limit
            self.limit = min(self.max_limit, self.limit + step)
        self._wake()

    def _wake(self) -> None:
        free = int(self.limit) - self.inflight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1
