"""The embedding cache: an LRU of text → vector in front of the micro-batcher, bounded by entries and bytes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medix_reward.caches import BoundedLRU, text_bytes
from medix_reward.embedding.batcher import MicroBatcher


@dataclass
class EmbedStats:
    encoded: int = 0
    cache_hits: int = 0


class EmbeddingCache:
    """Embeddings of distinct texts, from the LRU or, for the misses, the micro-batcher."""

    def __init__(self, batcher: MicroBatcher, max_entries: int, max_bytes: int):
        self.batcher = batcher
        self._vectors: BoundedLRU[str, np.ndarray] = BoundedLRU(max_entries, max_bytes)

    @property
    def cache_bytes(self) -> int:
        return self._vectors.bytes

    async def embed(self, texts: set[str], stats: EmbedStats) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for text in texts:
            vector = self._vectors.get(text)
            if vector is not None:
                found[text] = vector
        # Length order: a micro-batch is padded to its longest text, so neighbours of equal length waste
        # nothing (measured: 2.7× faster on a GRPO batch where unformatted responses are long answers).
        misses = sorted((text for text in texts if text not in found), key=len)
        stats.cache_hits += len(found)
        stats.encoded += len(misses)
        if misses:
            for text, row in zip(misses, await self.batcher.embed(misses), strict=True):
                vector = row.copy()  # a row is a view that would keep its whole micro-batch's array alive
                found[text] = vector
                self._vectors.put(text, vector, text_bytes(text) + vector.nbytes)
        return found
