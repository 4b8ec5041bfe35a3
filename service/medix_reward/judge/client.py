"""The LLM judge: an OpenAI chat-completions client built for many concurrent YES/NO calls.

One keep-alive connection pool (http.py: aiohttp), a global bound on calls in flight,
per-attempt timeouts, capped exponential backoff with full jitter (Retry-After honoured), replicas
tried in turn, and an LRU of verdicts with in-flight deduplication (cache.py): the same (answer, truth) pair
asked twice at once costs one call. `chat` puts a whole conversation (the evaluation protocol's rounds)
through the same machinery, keyed by all its messages.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from medix_reward.caches import BoundedLRU, text_bytes
from medix_reward.judge.adaptive import AdaptiveLimit
from medix_reward.judge.cache import SingleFlightCache
from medix_reward.judge.health import ReplicaHealth
from medix_reward.judge.http import AiohttpTransport, JudgeTimeout, JudgeTransport, JudgeUnreachable
from medix_reward.judge.prompts import REFERENCE_ASK, JudgeAsk, chat_request, neutralise, parse_reply, reply_content
from medix_reward.judge.types import JudgeError, JudgeReply, JudgeStats, Verdict
from medix_reward.settings import JudgeSettings
from medix_reward_client._retry import backoff_delay

if TYPE_CHECKING:
    from medix_reward.judge.shared_cache import SharedVerdictCache

T = TypeVar("T")

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# What a model server answers when this item's input is the problem (vLLM: 400 for a prompt beyond the
# context length). Not retried, and not a sign that the judge is down. 401, 403 and 404 (wrong key, wrong
# model) are the deployment's fault: every call would fail the same way.
_REJECTED_INPUT_STATUS = frozenset({400, 413, 422})
# The failures that say the judge itself is down, as opposed to one item's input or reply.
_OVERLOAD_STATUS = frozenset({429, 503})
# What a gateway in front of a replica answers when the replica behind it does not: no reply, for its health.
_GATEWAY_STATUS = frozenset({502, 503, 504})


def open_judge_transport(settings: JudgeSettings) -> JudgeTransport:
    """The keep-alive pool of a judge: a connection per call that may be in flight, and two for probes."""
    return AiohttpTransport(settings.concurrency)


class JudgeClient:
    def __init__(
        self,
        settings: JudgeSettings,
        http: JudgeTransport,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        shared: SharedVerdictCache | None = None,
    ):
        self.settings = settings
        self.shared = shared  # the second level (Redis), behind the LRU; None: none
        self._http = http
        self._sleep = sleep
        self._jitter = jitter
        self._slots = asyncio.Semaphore(settings.concurrency)
        # Per replica, the calls in flight adapt to its latency (adaptive.py); the semaphore caps them all.
        target = settings.target_latency_s or settings.timeout_s / 2
        self.limits = {
            url: AdaptiveLimit(settings.concurrency, target) if settings.adaptive else None
            for url in settings.base_urls
        }
        # Verdicts and whole-conversation replies (keys starting "chat") share one LRU: one memory budget.
        self._lru: BoundedLRU[tuple[str, ...], Any] = BoundedLRU(settings.cache_size, settings.cache_bytes)
        self._verdicts: SingleFlightCache[tuple[str, ...], Verdict] = SingleFlightCache(
            self._lru, lambda key, verdict: _key_bytes(key) + text_bytes(verdict.reply), (JudgeError,)
        )
        self._replies: SingleFlightCache[tuple[str, ...], str] = SingleFlightCache(
            self._lru, lambda key, reply: _key_bytes(key) + text_bytes(reply), (JudgeError,)
        )
        self._next_replica = 0
        self.health = ReplicaHealth(settings.base_urls, settings.health, self.probe)

    async def aclose(self) -> None:
        """Stops the health probes; the transport is its owner's to close."""
        await self.health.aclose()

    @property
    def cache_bytes(self) -> int:
        return self._lru.bytes

    def _headers(self) -> dict[str, str]:
        if self.settings.api_key is None:
            return {}
        return {"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}"}

    async def probe(self, url: str) -> bool:
        """Whether a replica answers its model list (vLLM and other OpenAI servers serve /models)."""
        timeout = self.settings.health.probe_timeout_s
        try:
            reply = await self._http.send("GET", f"{url}/models", body=None, headers=self._headers(), timeout_s=timeout)
        except (JudgeTimeout, JudgeUnreachable):
            return False
        return reply.status == 200

    async def reachable(self) -> bool:
        """Whether any replica answers its probe; each answer (or silence) is news for its breaker."""
        urls = self.settings.base_urls
        answers = await asyncio.gather(*(self.probe(url) for url in urls))
        for url, answered in zip(urls, answers, strict=True):
            self.health.probed(url, answered)
        return any(answers)

    async def verdict(self, answer: str, truth: str, stats: JudgeStats, ask: JudgeAsk = REFERENCE_ASK) -> Verdict:
        # Where the ask says so (hardened), the judge sees at most max_answer_chars of each: one long answer
        # cannot overflow its context. The reference's request sends them whole.
        limit = self.settings.max_answer_chars
        if not ask.truncate or (len(answer) <= limit and len(truth) <= limit):
            return await self._verdict(answer, truth, stats, ask)
        return replace(await self._verdict(answer[:limit], truth[:limit], stats, ask), truncated=True)

    async def _verdict(self, answer: str, truth: str, stats: JudgeStats, ask: JudgeAsk) -> Verdict:
        # Keyed by what the judge is shown: neutralising changes nothing for most answers, so it shares them.
        shown = (neutralise(answer), neutralise(truth)) if ask.neutralise else (answer, truth)
        logprobs = str(self.settings.logprobs or ask.logprobs)
        key = (self.settings.model, ask.prompt_version, logprobs, *shown)

        def body() -> dict[str, object]:
            return chat_request(self.settings, answer, truth, ask)  # a fresh nonce per attempt

        def parse(reply: JudgeReply) -> Verdict:
            return parse_reply(reply, strict=ask.strict)

        async def ask_judge() -> Verdict:
            return await self._ask(body, parse, stats, ask.strict, prompt=hash(key))

        verdict, cached = await self._verdicts.get(key, lambda: self._shared_or_ask(key, ask_judge, stats))
        stats.cache_hits += cached
        return Verdict(verdict.yes, verdict.reply, verdict.p_yes, cached=True) if cached else verdict

    async def chat(
        self, messages: list[dict[str, str]], stats: JudgeStats, *, model: str, max_tokens: int, timeout_s: float
    ) -> tuple[str, bool]:
        """The judge's reply to a whole conversation (greedy) and whether it came from the cache; the same
        retries, replicas, limits and deduplication as a verdict, keyed by every message of the conversation.
        The reply's content is returned as it is: reading it is the caller's protocol."""
        key = ("chat", model, str(max_tokens), *(f"{m['role']}\x00{m['content']}" for m in messages))
        request: dict[str, object] = {
            "model": model, "messages": messages, "temperature": 0, "top_p": 1, "max_tokens": max_tokens,
        }  # fmt: skip
        if self.settings.chat_template_kwargs:
            request["chat_template_kwargs"] = self.settings.chat_template_kwargs
        reply, cached = await self._replies.get(
            key, lambda: self._ask(lambda: request, reply_content, stats, False, timeout_s, prompt=hash(key))
        )
        stats.cache_hits += cached
        return reply, cached

    async def _shared_or_ask(
        self, key: tuple[str, ...], ask_judge: Callable[[], Awaitable[Verdict]], stats: JudgeStats
    ) -> Verdict:
        """The shared cache's verdict, else the judge's (then stored there). Asked once per key at a time: the
        caller holds the key's in-flight future."""
        if self.shared is None:
            return await ask_judge()
        stored = await self.shared.get(key)
        if stored is not None:
            stats.cache_hits += 1
            return Verdict(stored["yes"], stored["reply"], stored.get("p_yes"), cached=True)  # type: ignore[arg-type]
        verdict = await ask_judge()
        await self.shared.put(key, {"yes": verdict.yes, "reply": verdict.reply, "p_yes": verdict.p_yes})
        return verdict

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        settings = self.settings
        return backoff_delay(
            attempt, base=settings.backoff_base_s, cap=settings.backoff_max_s, jitter=self._jitter(),
            retry_after=retry_after, retry_after_cap=settings.retry_after_max_s,
        )  # fmt: skip

    async def _ask(
        self,
        body: Callable[[], dict[str, object]],
        parse: Callable[[JudgeReply], T],
        stats: JudgeStats,
        retry_unparseable: bool,
        timeout_s: float | None = None,
        *,
        prompt: int,
    ) -> T:
        urls = self.settings.base_urls
        first = self._next_replica
        self._next_replica = (first + 1) % len(urls)
        error: JudgeError | None = None
        unparseable_retry = retry_unparseable  # a reply that is no label is asked once more, then an error
        for attempt in range(self.settings.max_retries + 1):
            replica = self._usable_replica(first + attempt)
            if replica is None:  # at once: waiting for a timeout from a replica known to be down helps nobody
                raise error or self._refused()
            stats.retries += attempt > 0
            outcome, retryable, retry_after = await self._attempt(replica, body(), parse, stats, timeout_s, prompt)
            if not isinstance(outcome, JudgeError):
                return outcome
            error = outcome
            if unparseable_retry and error.code == "judge_bad_reply":
                unparseable_retry = False
                continue  # at once: the judge answered, it only said no label
            if not retryable:
                raise error
            if attempt < self.settings.max_retries:
                await self._sleep(self._backoff(attempt, retry_after))
        raise error or self._refused()

    def _refused(self) -> JudgeError:
        """The error of a call that no replica is healthy to take: the code of the failure that opened them."""
        code = self.health.breakers[self.settings.base_urls[0]].last_failure
        interval = self.settings.health.probe_interval_s
        return JudgeError(
            code, f"no judge replica is healthy: each failed repeatedly ({code}); probed every {interval:g} s"
        )

    def _usable_replica(self, index: int) -> str | None:
        """The replica at `index` (round robin), or the next one whose breaker lets calls through; None: none."""
        urls = self.settings.base_urls
        for offset in range(len(urls)):
            url = urls[(index + offset) % len(urls)]
            if self.health.breakers[url].allows:
                return url
        return None

    async def _attempt(
        self,
        replica: str,
        body: dict[str, object],
        parse: Callable[[JudgeReply], T],
        stats: JudgeStats,
        timeout_s: float | None,
        prompt: int,
    ) -> tuple[T | JudgeError, bool, str | None]:
        """One call to one replica, under its adaptive limit and the global cap: the parsed reply, or the error
        with whether another attempt may help and the server's Retry-After."""
        limit = self.limits[replica]
        if limit is not None:
            await limit.acquire()
        sent, overloaded = time.monotonic(), False
        timeout = timeout_s or self.settings.timeout_s
        try:
            async with self._slots:
                stats.calls += 1
                try:
                    reply = await self._http.send(
                        "POST", f"{replica}/chat/completions", body=body, headers=self._headers(), timeout_s=timeout
                    )
                except JudgeTimeout:
                    overloaded = True
                    self.health.failure(replica, "judge_timeout")
                    timed_out = JudgeError("judge_timeout", f"no reply within {timeout:g} s")
                    return _counted(stats, timed_out), True, None
                except JudgeUnreachable as exc:
                    self.health.failure(replica, "judge_unreachable")
                    unreachable = JudgeError("judge_unreachable", f"cannot reach the judge ({exc})")
                    return _counted(stats, unreachable), True, None
            self._record_health(replica, reply.status, prompt)
            if reply.status == 200:
                try:
                    parsed = parse(reply)
                except JudgeError as bad:
                    self.health.failure(replica, bad.code, prompt)
                    return _counted(stats, bad), False, None
                self.health.success(replica)
                stats.outcomes["ok"] += 1
                return parsed, False, None
            overloaded = reply.status in _OVERLOAD_STATUS
            error = JudgeError("judge_http_error", f"judge answered HTTP {reply.status}")
            if reply.status in _REJECTED_INPUT_STATUS:
                message = f"the judge refused this item's input (HTTP {reply.status}, e.g. too long)"
                error = JudgeError("judge_rejected_input", message)
            return _counted(stats, error), reply.status in _RETRYABLE_STATUS, reply.headers.get("retry-after")
        finally:
            if limit is not None:
                limit.release(sent, overloaded)

    def _record_health(self, replica: str, status: int, prompt: int) -> None:
        """What a reply says about its replica (judge/health.py): a gateway's error is no reply; a refusal
        of the item's input, or a completion, is a live judge; another error counts once per prompt."""
        if status in _GATEWAY_STATUS:
            self.health.failure(replica, "judge_http_error")
        elif status in _REJECTED_INPUT_STATUS:
            self.health.success(replica)
        elif status not in (200, 429):  # a 200 is counted by the caller, once its body is read
            self.health.failure(replica, "judge_http_error", prompt)


def _key_bytes(key: tuple[str, ...]) -> int:
    return sum(map(text_bytes, key))


def _counted(stats: JudgeStats, error: JudgeError) -> JudgeError:
    stats.outcomes[error.code] += 1
    return error
