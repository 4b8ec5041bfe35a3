"""What every adapter shares: one client per service URL and retry settings for the whole trainer process,
and the one way an adapter turns a batch into floats. The policy for items that could not be scored lives
in `medix_reward_client.scores`.

Trainers run for days and the service may restart under them, so the adapters retry by time, not by
count: every adapter takes `max_retries` (default None: no count limit), `retry_budget_s` (default 600:
no retry starts later than ten minutes after the first attempt) and `timeout` (per attempt, default
300 s) in its kwargs, and logs each wait. `register(url, RewardClient(url, …))` before training makes the
sync adapters given that `url` (None: the default one) use that client instead, whatever their kwargs;
`reset()` forgets every client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medix_reward_client._core import APIStatusError
from medix_reward_client.client import AsyncRewardClient, RewardClient
from medix_reward_client.schema import RewardResponse
from medix_reward_client.scores import float_scores, request_unscored, whole_request_scores


@dataclass(frozen=True)
class Retries:
    """The adapters' retry settings (see the module's doc)."""

    max_retries: int | None = None
    retry_budget_s: float | None = 600.0
    timeout: float = 300.0

    def kwargs(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "retry_budget_s": self.retry_budget_s, "timeout": self.timeout}


DEFAULT_RETRIES = Retries()

_registered: dict[str | None, RewardClient] = {}
_clients: dict[tuple[str | None, Retries], RewardClient] = {}
_async_clients: dict[tuple[str | None, Retries, int], AsyncRewardClient] = {}
_lock = threading.Lock()


def client(url: str | None, retries: Retries = DEFAULT_RETRIES) -> RewardClient:
    """One client (and connection pool) per service URL and retry settings for the whole trainer process."""
    with _lock:
        if url in _registered:
            return _registered[url]
        if (url, retries) not in _clients:
            _clients[url, retries] = RewardClient(url, **retries.kwargs())
        return _clients[url, retries]


def register(url: str | None, reward_client: RewardClient) -> None:
    """The sync adapters given `url` use this client from now on."""
    with _lock:
        _registered[url] = reward_client


def reset() -> None:
    with _lock:
        _registered.clear()
        _clients.clear()
        _async_clients.clear()


def async_client(url: str | None, retries: Retries = DEFAULT_RETRIES) -> AsyncRewardClient:
    """One async client per URL, retry settings and event loop (an httpx.AsyncClient belongs to its loop)."""
    key = (url, retries, id(asyncio.get_running_loop()))
    if key not in _async_clients:
        _async_clients[key] = AsyncRewardClient(url, **retries.kwargs())
    return _async_clients[key]


def to_floats(
    items: Sequence[dict[str, Any]], outcome: RewardResponse | APIStatusError, fallback: float | None
) -> list[dict[str, float]]:
    """Floats per item from the service's response, or from its refusal of the whole request: an unscored
    item raises RewardUnavailable or gets `fallback` (scores.py); other errors are raised as they are."""
    if isinstance(outcome, APIStatusError):
        reason = request_unscored(outcome)
        if reason is None:
            raise outcome
        return whole_request_scores(len(items), fallback, reason, str(outcome))
    return [float_scores(result, fallback, i) for i, result in enumerate(outcome.results)]


def score(reward_client: RewardClient, items: Sequence[dict[str, Any]]) -> RewardResponse | APIStatusError:
    """The response, or the service's error status after the client's retries."""
    try:
        return reward_client.score(items)
    except APIStatusError as exc:
        return exc


async def score_async(
    reward_client: AsyncRewardClient, items: Sequence[dict[str, Any]]
) -> RewardResponse | APIStatusError:
    try:
        return await reward_client.score(items)
    except APIStatusError as exc:
        return exc
