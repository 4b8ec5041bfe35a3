"""What every adapter shares: one client per service URL, and the policy for items that could not be scored."""

from __future__ import annotations

import logging
import threading
from collections import Counter

from medix_reward_client._core import RewardError
from medix_reward_client.client import AsyncRewardClient, RewardClient
from medix_reward_client.schema import ItemResult

log = logging.getLogger("medix_reward_client.adapters")

# How many values were replaced by a configured fallback, by reason: logged and counted, never silent.
FALLBACKS: Counter[str] = Counter()

_clients: dict[str | None, RewardClient] = {}
_async_clients: dict[tuple[str | None, int], AsyncRewardClient] = {}
_lock = threading.Lock()


class RewardUnavailable(RewardError):
    """An item could not be scored and no fallback was configured."""


def client(url: str | None) -> RewardClient:
    """One client (and connection pool) per service URL for the whole trainer process."""
    with _lock:
        if url not in _clients:
            _clients[url] = RewardClient(url)
        return _clients[url]


def async_client(url: str | None) -> AsyncRewardClient:
    """One async client per URL and event loop (an httpx.AsyncClient belongs to the loop it was made in)."""
    import asyncio

    key = (url, id(asyncio.get_running_loop()))
    if key not in _async_clients:
        _async_clients[key] = AsyncRewardClient(url)
    return _async_clients[key]


def unscored_reason(result: ItemResult) -> str:
    return ", ".join(f"{name}: {error.code}" for name, error in result.errors.items()) or "unscored"


def float_scores(result: ItemResult, fallback: float | None) -> dict[str, float]:
    """overall and every component as floats, for trainers that cannot take a missing value.

    An item the service could not score raises RewardUnavailable, unless `fallback` is set: then its
    missing values become `fallback`, with a warning and a count in FALLBACKS.
    """
    values: dict[str, float | None] = {"overall": result.overall, **result.scores.model_dump()}
    if result.overall is None:
        reason = unscored_reason(result)
        if fallback is None:
            raise RewardUnavailable(f"item {result.id!r} could not be scored ({reason}) and no fallback is set")
        FALLBACKS[reason] += 1
        log.warning("item %r could not be scored (%s): using fallback %s", result.id, reason, fallback)
        values["overall"] = fallback
        for name in result.errors:
            values[name] = fallback
    # What is still None is a component the service was told not to compute: left out, not invented.
    return {name: value for name, value in values.items() if value is not None}
