"""TRL GRPOTrainer reward functions.

    from medix_reward_client.adapters.trl import REWARD_WEIGHTS, reward_funcs
    trainer = GRPOTrainer(..., reward_funcs=reward_funcs("http://reward-host:8080"),
                          args=GRPOConfig(..., reward_weights=REWARD_WEIGHTS))

TRL calls each function as `f(prompts, completions, **columns)`; the dataset's `ground_truth` column
("<TAG> answer") arrives as a keyword. Completions may be strings or chat messages. The first function
is the composite reward; the others are the components, weighted 0 so that TRL logs them without
counting them twice. All five share one service call per batch. An item the service could not score
is None, which TRL leaves out of the group's baseline. `reward_funcs(..., use_async=True)` gives
coroutine functions, which TRL runs concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from medix_reward_client.adapters.clients import async_client, client
from medix_reward_client.schema import COMPONENTS, ItemResult, RewardResponse

NAMES = ("overall", *COMPONENTS)
REWARD_WEIGHTS = [1.0] + [0.0] * len(COMPONENTS)

RewardFunc = Callable[..., list[float | None]]
AsyncRewardFunc = Callable[..., Awaitable[list[float | None]]]


def completion_text(completion: str | Sequence[dict[str, Any]]) -> str:
    """A completion as TRL passes it: a string, or chat messages whose last one is the model's."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def _value(result: ItemResult, name: str) -> float | None:
    return result.overall if name == "overall" else getattr(result.scores, name)


class _Batches:
    """Scores each distinct (completions, truths) batch once, however many of the functions ask for it."""

    def __init__(self, url: str | None, ground_truth_column: str):
        self.url = url
        self.column = ground_truth_column
        self._last: tuple[tuple[Any, ...], RewardResponse] | None = None
        self._pending: dict[tuple[Any, ...], asyncio.Task[RewardResponse]] = {}

    def _items(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], list[dict]]:
        truths = kwargs[self.column]
        texts = [completion_text(c) for c in completions]
        items = [{"response": t, "ground_truth": g} for t, g in zip(texts, truths, strict=True)]
        return (tuple(texts), tuple(truths)), items

    def score(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> RewardResponse:
        key, items = self._items(completions, kwargs)
        if self._last is None or self._last[0] != key:
            self._last = (key, client(self.url).score(items))
        return self._last[1]

    async def score_async(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> RewardResponse:
        key, items = self._items(completions, kwargs)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        task = self._pending.get(key)
        if task is None:
            task = self._pending[key] = asyncio.ensure_future(async_client(self.url).score(items))
        try:
            response = await task
        finally:
            self._pending.pop(key, None)
        self._last = (key, response)
        return response


def reward_funcs(
    url: str | None = None, *, ground_truth_column: str = "ground_truth", use_async: bool = False
) -> list[RewardFunc] | list[AsyncRewardFunc]:
    """[composite, format, modality, accuracy_llm, accuracy_embed], named medix_<name> for TRL's logs."""
    batches = _Batches(url, ground_truth_column)

    def make(name: str) -> RewardFunc:
        def func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            return [_value(r, name) for r in batches.score(completions, kwargs).results]

        func.__name__ = f"medix_{name}"
        return func

    def make_async(name: str) -> AsyncRewardFunc:
        async def func(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            return [_value(r, name) for r in (await batches.score_async(completions, kwargs)).results]

        func.__name__ = f"medix_{name}"
        return func

    return [make_async(name) for name in NAMES] if use_async else [make(name) for name in NAMES]
