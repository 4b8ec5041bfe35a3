"""A bounded cache with single flight: a key's value is computed once at a time, however many ask for it.

Callers that ask for a key while its computation runs wait on it (`asyncio.shield`: one caller leaving does not
cancel the others). A computation that fails with one of `shared_errors` fails its waiters with the same error;
one cancelled with its caller (a client that disconnected) is computed again by the next waiter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from medix_reward.caches import BoundedLRU

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _OwnerGone(Exception):
    """The computation others waited on was cancelled with its caller, not failed."""


class SingleFlightCache(Generic[K, V]):
    """`lru` may be shared with other caches (disjoint keys), so that they hold one memory budget."""

    def __init__(
        self, lru: BoundedLRU[K, V], size_of: Callable[[K, V], int], shared_errors: tuple[type[Exception], ...]
    ) -> None:
        self._lru = lru
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self._size_of = size_of
        self._shared_errors = shared_errors

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """The cached value of `key`, or the one computation of it now, or a new one: (value, whether it was
        already there or being computed)."""
        cached = self._lru.get(key)
        if cached is not None:
            return cached, True
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending), True
            except _OwnerGone:  # the caller that computed it went away; this one still wants it
                return await self.get(key, compute)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, self._shared_errors) else _OwnerGone())
            future.exception()  # mark retrieved: no "never retrieved" warning when nobody else waited
            raise
        else:
            future.set_result(value)
            self._lru.put(key, value, self._size_of(key, value))
            return value, False
        finally:
            del self._inflight[key]
