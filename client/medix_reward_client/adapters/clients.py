"""What every adapter shares: one client per service URL for the whole trainer process. The policy for
items that could not be scored lives in `medix_reward_client.scores`.

`register(url, RewardClient(url, max_retries=…, timeout=…))` before training makes the adapters given
that `url` (None: the default one) use that client, with its retries, timeouts and key; `reset()`
forgets every client.
"""

from __future__ import annotations

import asyncio
import threading

from medix_reward_client.client import AsyncRewardClient, RewardClient

_clients: dict[str | None, RewardClient] = {}
_async_clients: dict[tuple[str | None, int], AsyncRewardClient] = {}
_lock = threading.Lock()


def client(url: str | None) -> RewardClient:
    """One client (and connection pool) per service URL for the whole trainer process."""
    with _lock:
        if url not in _clients:
            _clients[url] = RewardClient(url)
        return _clients[url]


def register(url: str | None, reward_client: RewardClient) -> None:
    """The sync adapters given `url` use this client from now on."""
    with _lock:
        _clients[url] = reward_client


def reset() -> None:
    with _lock:
        _clients.clear()
        _async_clients.clear()


def async_client(url: str | None) -> AsyncRewardClient:
    """One async client per URL and event loop (an httpx.AsyncClient belongs to the loop it was made in)."""
    key = (url, id(asyncio.get_running_loop()))
    if key not in _async_clients:
        _async_clients[key] = AsyncRewardClient(url)
    return _async_clients[key]
