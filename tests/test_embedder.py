"""The micro-batcher and the embedding cache, with a fake encoder that shows batching, and the real MiniLM."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from medix_reward.embedder import EmbedderError, EmbeddingCache, EmbedStats, MicroBatcher
from tests.helpers import CharEncoder


def with_batcher(encoder, coro_fn, max_batch_size=4, max_wait_s=0.01):
    async def main():
        batcher = MicroBatcher(encoder, max_batch_size, max_wait_s)
        batcher.start()
        try:
            return await coro_fn(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_concurrent_callers_are_coalesced_and_each_gets_its_own_vectors():
    encoder = CharEncoder()
    callers = [[f"text {c}-{i}" + "x" * i for i in range(n)] for c, n in enumerate([3, 5, 1, 7])]

    async def go(batcher):
        return await asyncio.gather(*(batcher.embed(texts) for texts in callers))

    results = with_batcher(encoder, go)
    for texts, vectors in zip(callers, results, strict=True):
        np.testing.assert_allclose(np.stack(vectors), CharEncoder().encode(texts), atol=1e-6)
    sizes = [len(batch) for batch in encoder.batches]
    assert max(sizes) == 4 and sum(sizes) == 16  # bounded batches, every text encoded once
    callers_in_first = {text.split("-")[0] for text in encoder.batches[0]}
    assert len(callers_in_first) > 1  # texts of different callers share a batch


def test_a_broken_encoder_fails_every_waiter_and_the_batcher_survives():
    encoder = CharEncoder()

    async def go(batcher):
        encoder.fail = True
        outcomes = await asyncio.gather(batcher.embed(["a", "b"]), batcher.embed(["c"]), return_exceptions=True)
        encoder.fail = False
        after = await batcher.embed(["d"])
        return outcomes, after, batcher.alive

    outcomes, after, alive = with_batcher(encoder, go)
    assert all(isinstance(o, EmbedderError) for o in outcomes)
    assert alive and len(after) == 1


def test_stopped_batcher_refuses_work():
    async def go(batcher):
        await batcher.stop()
        with pytest.raises(EmbedderError):
            await batcher.embed(["a"])

    with_batcher(CharEncoder(), go)


def test_cache_counts_hits_and_encodes_only_misses():
    encoder = CharEncoder()

    async def go(batcher):
        cache = EmbeddingCache(batcher, max_entries=10, max_bytes=2**30)
        first, second = EmbedStats(), EmbedStats()
        await cache.embed({"alpha", "beta"}, first)
        vectors = await cache.embed({"alpha", "gamma"}, second)
        return first, second, vectors

    first, second, vectors = with_batcher(encoder, go)
    assert (first.encoded, first.cache_hits, second.encoded, second.cache_hits) == (2, 0, 1, 1)
    assert set(vectors) == {"alpha", "gamma"}


def test_real_model_batched_equals_single(minilm):
    texts = ["Pneumothorax", "Left-sided tension pneumothorax with mediastinal shift", "Gallstones", "é"]
    batched = minilm.encode(texts)
    single = np.concatenate([minilm.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_a_small_caller_waits_for_one_batch_not_behind_a_large_one():
    """Batches draw from callers in turn: one text queued after 200 long ones is in the next batch."""

    async def run() -> tuple[list[list[str]], list[str]]:
        encoder = CharEncoder()
        batcher = MicroBatcher(encoder, max_batch_size=8, max_wait_s=0.001, max_batch_chars=8 * 100)
        batcher.start()
        try:
            large = asyncio.ensure_future(batcher.embed([f"long text {i} " + "x" * 200 for i in range(200)]))
            await asyncio.sleep(0)  # the large caller is queued first
            await batcher.embed(["small"])
            done_with_small = list(encoder.batches)
            await large
        finally:
            await batcher.stop()
        return done_with_small, [t for batch in encoder.batches for t in batch]

    at_small, everything = asyncio.run(run())
    assert "small" in at_small[-1] and len(at_small) <= 2  # the first batch or the next, not the 50th
    assert all(len(batch) <= 4 for batch in at_small)  # 200+ characters each: the padded budget holds 4
    assert len(everything) == 201
