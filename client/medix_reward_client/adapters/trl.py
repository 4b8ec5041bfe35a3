"""TRL GRPOTrainer reward functions.

    from medix_reward_client.adapters.trl import REWARD_WEIGHTS, reward_funcs
    trainer = GRPOTrainer(..., reward_funcs=reward_funcs("http://reward-host:8080"),
                          args=GRPOConfig(..., reward_weights=REWARD_WEIGHTS))

TRL calls each function as `f(prompts, completions, **columns)`; the dataset's `ground_truth` column
("<TAG> answer") arrives as a keyword. Completions may be strings or chat messages. The first function
is the composite reward; the others are the components, weighted 0 so that TRL logs them without
counting them twice. All five share one service call per batch. `reward_funcs(..., use_async=True)` gives
coroutine functions, which TRL runs concurrently.

An item the service could not score (its judge call failed, or every judge call of the batch did and the
service answered 502/504) is None from every one of the five functions: TRL (≥ 1.x) leaves a row out of
the group baseline and gives it advantage 0 only when every function returns None for it. With
`fallback` set, the item gets the fallback instead (logged and counted), as in the other adapters.
`max_retries`, `retry_budget_s` and `timeout` set the client's retries (adapters/clients.py); `client`
replaces the shared client.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from medix_reward_client._core import APIStatusError
from medix_reward_client.adapters.clients import Retries, async_client, client, score, score_async, to_floats
from medix_reward_client.client import AsyncRewardClient, RewardClient
from medix_reward_client.schema import COMPONENTS, RewardResponse
from medix_reward_client.scores import request_unscored, unscored_reason

log = logging.getLogger("medix_reward_client.adapters.trl")

NAMES = ("overall", *COMPONENTS)
REWARD_WEIGHTS = [1.0] + [0.0] * len(COMPONENTS)

RewardFunc = Callable[..., list[float | None]]
AsyncRewardFunc = Callable[..., Awaitable[list[float | None]]]
Values = list[dict[str, float | None]]


def completion_text(completion: str | Sequence[dict[str, Any]]) -> str:
    """A completion as TRL passes it: a string, or chat messages whose last one is the model's."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def trl_values(
    items: Sequence[dict[str, Any]], outcome: RewardResponse | APIStatusError, fallback: float | None
) -> Values:
    """Each item's values by name. Without a fallback an unscored item is None under every name, so that TRL
    drops its row; with one, the other adapters' policy (scores.py)."""
    if fallback is not None:
        return list(to_floats(items, outcome, fallback))
    if isinstance(outcome, APIStatusError):
        reason = request_unscored(outcome)
        if reason is None:
            raise outcome
        log.warning("none of the %d items could be scored (%s: %s): None for TRL", len(items), reason, outcome)
        return [{} for _ in items]
    unscored = Counter(unscored_reason(r) for r in outcome.results if r.overall is None)
    if unscored:
        log.warning("%d of %d items could not be scored (%s): None for TRL", sum(unscored.values()),
                    len(items), dict(unscored))  # fmt: skip
    return [{"overall": r.overall, **r.scores.model_dump()} if r.overall is not None else {} for r in outcome.results]


class _Batches:
    """Scores each distinct (completions, truths) batch once, however many of the functions ask for it."""

    def __init__(
        self,
        url: str | None,
        ground_truth_column: str,
        fallback: float | None,
        retries: Retries,
        reward_client: RewardClient | AsyncRewardClient | None,
    ):
        self.url, self.column, self.fallback, self.retries = url, ground_truth_column, fallback, retries
        self.client = reward_client
        self._last: tuple[tuple[Any, ...], Values] | None = None
        self._pending: dict[tuple[Any, ...], asyncio.Task[Values]] = {}

    def _items(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], list[dict]]:
        truths = kwargs[self.column]
        texts = [completion_text(c) for c in completions]
        items = [{"response": t, "ground_truth": g} for t, g in zip(texts, truths, strict=True)]
        return (tuple(texts), tuple(truths)), items

    def values(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> Values:
        key, items = self._items(completions, kwargs)
        if self._last is None or self._last[0] != key:
            if isinstance(self.client, AsyncRewardClient):
                raise TypeError("sync reward functions need a RewardClient, not an AsyncRewardClient")
            reward_client = self.client or client(self.url, self.retries)
            self._last = (key, trl_values(items, score(reward_client, items), self.fallback))
        return self._last[1]

    async def values_async(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> Values:
        key, items = self._items(completions, kwargs)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.ensure_future(self._score_async(items))
        try:
            values = await task
        finally:
            self._pending.pop(key, None)
        self._last = (key, values)
        return values

    async def _score_async(self, items: list[dict]) -> Values:
        if isinstance(self.client, RewardClient):
            outcome = await asyncio.to_thread(score, self.client, items)
        else:
            outcome = await score_async(self.client or async_client(self.url, self.retries), items)
        return trl_values(items, outcome, self.fallback)


def reward_funcs(
    url: str | None = None,
    *,
    ground_truth_column: str = "ground_truth",
    use_async: bool = False,
    client: RewardClient | AsyncRewardClient | None = None,
    max_retries: int | None = None,
    retry_budget_s: float | None = Retries.retry_budget_s,
    timeout: float = Retries.timeout,
    fallback: float | None = None,
) -> list[RewardFunc] | list[AsyncRewardFunc]:
    """[composite, format, modality, accuracy_llm, accuracy_embed], named medix_<name> for TRL's logs."""
    batches = _Batches(url, ground_truth_column, fallback, Retries(max_retries, retry_budget_s, timeout), client)

    def make(name: str) -> RewardFunc:
        def func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            return [v.get(name) for v in batches.values(completions, kwargs)]

        func.__name__ = f"medix_{name}"
        return func

    def make_async(name: str) -> AsyncRewardFunc:
        async def func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            return [v.get(name) for v in await batches.values_async(completions, kwargs)]

        func.__name__ = f"medix_{name}"
        return func

    return [make_async(name) for name in NAMES] if use_async else [make(name) for name in NAMES]
