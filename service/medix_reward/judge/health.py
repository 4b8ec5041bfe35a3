"""The health of each judge replica, from all traffic: a circuit breaker per replica, and the probes that
close it again (Envoy's outlier detection and circuit breakers, as applied to a model server).

A replica is `closed` (used), `open` (not used: its calls fail at once instead of waiting for timeouts) or
`half_open` (used again after a probe answered; its first failure opens it again, its first success closes
it). It opens when, over the last `window_s` seconds, its last `min_failures` attempts failed, or at least
`min_failures` of its attempts failed and they were at least `failure_ratio` of all of them.

What counts as a failure says something about the replica, not about one item:
- no reply (refused, reset, timed out) or a gateway's 502/503/504: every attempt counts;
- a reply that is an error for this call (HTTP 500, 401/404, a body that is no completion): it counts once per
  prompt in the window, so one prompt that the judge fails on deterministically, retried or asked again by a
  trainer sample after sample, cannot make the judge look down while it answers everything else;
- a refusal of the item's input (400/413/422) is a reply from a live judge: it counts as a success;
- 429 counts as neither: overload is the adaptive limit's business (adaptive.py).

While a replica is open, `GET /models` (the readiness probe) is sent to it every `probe_interval_s`; an answer
half-opens it. When every judged pair of a request failed and some replica still looks healthy, `confirm`
probes them at once: a replica that answers no probe is opened, so a dead judge is told apart from one bad
item even by a one-item request whose few attempts do not reach `min_failures`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import StrEnum

from medix_reward.judge.types import JudgeErrorCode
from medix_reward.settings import JudgeHealthSettings

_MAX_EVENTS = 1024  # attempts remembered per replica: the ratio is over at most this many, within the window


class State(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


# The value of each state in the /metrics gauge.
STATE_VALUES = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


class Breaker:
    """One replica's circuit breaker; `clock` is injectable for tests."""

    def __init__(self, settings: JudgeHealthSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self._clock = clock
        self.state = State.CLOSED
        self.opened = 0  # times it opened
        self.last_failure: JudgeErrorCode = (
            "judge_unreachable"  # the error code of its last failure, for calls refused while open
        )
        self._events: deque[tuple[float, bool]] = deque(maxlen=_MAX_EVENTS)  # (when, failed)
        self._failed_prompts: dict[int, float] = {}  # prompt → when it last counted as a failure
        self.changed = asyncio.Event()  # set on every state change (tests wait on it, not on time)

    @property
    def allows(self) -> bool:
        return self.state is not State.OPEN

    def success(self) -> None:
        now = self._clock()
        self._events.append((now, False))
        if self.state is State.HALF_OPEN:
            self._set(State.CLOSED)

    def failure(self, code: JudgeErrorCode, prompt: int | None = None) -> None:
        """A failed attempt with its error code; `prompt` (a hash of what was asked) when the replica replied
        with an error, None when it did not reply at all."""
        now = self._clock()
        self.last_failure = code
        self._forget(now)
        if prompt is not None:
            if prompt in self._failed_prompts:
                return  # this prompt failed already: no news about the replica
            self._failed_prompts[prompt] = now
        self._events.append((now, True))
        if self.state is State.HALF_OPEN or (self.state is State.CLOSED and self._tripped()):
            self._set(State.OPEN)

    def trip(self) -> None:
        """Open at once (a probe got no answer)."""
        if self.state is not State.OPEN:
            self._set(State.OPEN)

    def probed(self) -> None:
        """A probe answered: an open replica may be tried again."""
        if self.state is State.OPEN:
            self._set(State.HALF_OPEN)

    def _tripped(self) -> bool:
        s = self.settings
        in_a_row = 0
        for _, failed in reversed(self._events):
            if not failed or in_a_row == s.min_failures:
                break
            in_a_row += 1
        failures = sum(failed for _, failed in self._events)
        return in_a_row >= s.min_failures or (
            failures >= s.min_failures and failures >= s.failure_ratio * len(self._events)
        )

    def _forget(self, now: float) -> None:
        horizon = now - self.settings.window_s
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()
        if len(self._failed_prompts) > _MAX_EVENTS or (
            self._failed_prompts and min(self._failed_prompts.values()) < horizon
        ):
            self._failed_prompts = {p: t for p, t in self._failed_prompts.items() if t >= horizon}
            while len(self._failed_prompts) > _MAX_EVENTS:
                del self._failed_prompts[next(iter(self._failed_prompts))]

    def _set(self, state: State) -> None:
        self.state = state
        if state is State.OPEN:
            self.opened += 1
        if state is not State.HALF_OPEN:
            self._events.clear()
            self._failed_prompts.clear()
        self.changed.set()
        self.changed = asyncio.Event()


Probe = Callable[[str], Awaitable[bool]]


class ReplicaHealth:
    """The breakers of a judge's replicas, and the probe loop of each open one. `probe(url)` says whether the
    replica answers (JudgeClient.probe: GET /models). Close with `aclose` (cancels the probe loops)."""

    def __init__(self, urls: list[str], settings: JudgeHealthSettings, probe: Probe):
        self.settings = settings
        self.breakers = {url: Breaker(settings) for url in urls}
        self._probe = probe
        self._loops: dict[str, asyncio.Task[None]] = {}

    @property
    def healthy(self) -> bool:
        """Whether some replica may be used (closed or half-open)."""
        return any(breaker.allows for breaker in self.breakers.values())

    def states(self) -> dict[str, str]:
        return {url: breaker.state.value for url, breaker in self.breakers.items()}

    def success(self, url: str) -> None:
        self.breakers[url].success()

    def failure(self, url: str, code: JudgeErrorCode, prompt: int | None = None) -> None:
        self.breakers[url].failure(code, prompt)
        self._watch(url)

    def probed(self, url: str, answered: bool) -> None:
        """A probe's outcome from elsewhere (readiness): an answer half-opens, silence counts as a failure."""
        if answered:
            self.breakers[url].probed()
        else:
            self.failure(url, "judge_unreachable")

    async def confirm(self) -> bool:
        """Probe every replica that looks healthy now; one that does not answer is opened. Whether any is
        still healthy."""
        urls = [url for url, breaker in self.breakers.items() if breaker.allows]
        answers = await asyncio.gather(*(self._probe(url) for url in urls))
        for url, answered in zip(urls, answers, strict=True):
            if not answered:
                self.breakers[url].trip()
                self._watch(url)
        return self.healthy

    def _watch(self, url: str) -> None:
        """Start the probe loop of an open replica (one per replica)."""
        if self.breakers[url].state is State.OPEN and url not in self._loops:
            self._loops[url] = asyncio.get_running_loop().create_task(self._probe_until_used(url))

    async def _probe_until_used(self, url: str) -> None:
        breaker = self.breakers[url]
        try:
            while breaker.state is State.OPEN:
                await asyncio.sleep(self.settings.probe_interval_s)
                if await self._probe(url):
                    breaker.probed()
        finally:
            del self._loops[url]

    async def aclose(self) -> None:
        loops = list(self._loops.values())
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
