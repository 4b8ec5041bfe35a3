"""The caches are bounded by bytes as well as entries: distinct long answers cannot grow them without limit."""

from __future__ import annotations

import asyncio
import sys

import numpy as np

from medix_reward.caches import ENTRY_OVERHEAD_BYTES, BoundedLRU
from medix_reward.embedding.cache import EmbeddingCache, EmbedStats


def test_evicts_least_recently_used_by_entries():
    lru: BoundedLRU[str, int] = BoundedLRU(max_entries=2, max_bytes=10**6)
    lru.put("a", 1, 1)
    lru.put("b", 2, 1)
    assert lru.get("a") == 1  # now b is the oldest
    lru.put("c", 3, 1)
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (1, None, 3)


def test_evicts_by_bytes_and_keeps_the_count_exact():
    budget = 10 * (1000 + ENTRY_OVERHEAD_BYTES)
    lru: BoundedLRU[int, str] = BoundedLRU(max_entries=10**6, max_bytes=budget)
    for i in range(1000):  # a soak of distinct long answers
        lru.put(i, "x" * 1000, 1000)
        assert lru.bytes <= budget
    assert len(lru) == 10 and lru.get(999) is not None and lru.get(989) is None
    lru.put(999, "y", 1)  # replacing an entry re-charges it
    assert lru.bytes == 9 * (1000 + ENTRY_OVERHEAD_BYTES) + 1 + ENTRY_OVERHEAD_BYTES


def test_an_entry_larger_than_the_budget_or_a_disabled_cache_keeps_nothing():
    lru: BoundedLRU[str, str] = BoundedLRU(max_entries=10, max_bytes=100)
    lru.put("big", "x", 1000)
    assert len(lru) == 0 and lru.bytes == 0
    off: BoundedLRU[str, str] = BoundedLRU(max_entries=0, max_bytes=10**6)
    off.put("a", "b", 1)
    assert off.get("a") is None


class RowsOfOneBatch:
    """A micro-batcher stand-in that answers as the real one does: rows (views) of one batch array."""

    async def embed(self, texts: list[str]) -> list[np.ndarray]:
        return list(np.ones((len(texts), 384), dtype=np.float32))


def test_the_embedding_cache_charges_what_it_holds():
    cache = EmbeddingCache(RowsOfOneBatch(), max_entries=100, max_bytes=10**8)  # type: ignore[arg-type]
    ascii_text, emoji_text = "x" * 32_768, "😀" + "x" * 32_767
    vectors = asyncio.run(cache.embed({ascii_text, emoji_text}, EmbedStats()))
    # A cached vector owns its memory: a view would keep the whole micro-batch's array alive (issue 24).
    assert all(vector.base is None for vector in vectors.values())
    # A 32k-character answer with one emoji holds 4 bytes a character, and is charged so.
    charged = cache.cache_bytes - 2 * (384 * 4 + ENTRY_OVERHEAD_BYTES)
    assert charged == sys.getsizeof(ascii_text) + sys.getsizeof(emoji_text) >= 5 * 32_768
