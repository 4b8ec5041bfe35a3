"""The micro-batcher and the embedding cache, with a fake encoder that shows batching, and the real MiniLM."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from medix_reward.embedding.backends import EmbedderError, SentenceTransformerEncoder
from medix_reward.embedding.batcher import MicroBatcher
from medix_reward.embedding.cache import EmbeddingCache, EmbedStats
from medix_reward.settings import EmbedderSettings, Settings
from tests.helpers import MINILM, CharEncoder


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

    async def run() -> list[list[str]]:
        encoder = CharEncoder()
        batcher = MicroBatcher(encoder, max_batch_size=8, max_wait_s=0.001, max_batch_chars=8 * 100)
        batcher.start()
        try:
            large = asyncio.ensure_future(batcher.embed([f"long text {i} " + "x" * 200 for i in range(200)]))
            await asyncio.sleep(0)  # the large caller is queued first
            await batcher.embed(["small"])
            await large
        finally:
            await batcher.stop()
        return encoder.batches

    # Read off the encoder's own record of batches, not what had run when the small caller woke up: the encoder
    # thread may have run the next batch by then.
    batches = asyncio.run(run())
    small_batch = next(i for i, batch in enumerate(batches) if "small" in batch)
    assert small_batch <= 1  # the first batch or the next, not the 50th
    assert all(len(batch) <= 4 for batch in batches)  # 200+ characters each: the padded budget holds 4
    assert sum(map(len, batches)) == 201


# -- backends -------------------------------------------------------------------------------------------------

PAIRS = [("Pneumothorax on the left side", "Left-sided pneumothorax"), ("Pleural effusion", "Pneumothorax"),
         ("collapsed lung (apex), sample 3", "Pneumothorax of the apex"), ("x " * 2000, "Pneumothorax")]  # fmt: skip


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_runtime_backends_match_torch(minilm, exports, backend, caplog):
    """The exported model gives torch's vectors (the benchmark measures the same on the parity corpus), long
    texts are truncated as torch truncates them, and the export is made once and then reused."""
    settings = EmbedderSettings(model=MINILM, backend=backend, export_dir=str(exports))
    with caplog.at_level(logging.INFO, logger="medix_reward.embedding.export"):
        encoder = SentenceTransformerEncoder(settings)
    texts = [t for pair in PAIRS for t in pair]
    vectors, reference = encoder.encode(texts), minilm.encode(texts)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert np.abs(vectors - reference).max() < 1e-4
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, reference.shape[1])
    [export] = list(exports.glob("*/model.onnx"))
    stamp = export.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="medix_reward.embedding.export"):
        caplog.clear()
        SentenceTransformerEncoder(settings)
    assert "reusing the ONNX export" in caplog.text and export.stat().st_mtime_ns == stamp


def test_backend_and_dtype_are_in_config_and_hash():
    from medix_reward.scoring.pipeline import config_hash
    from medix_reward.scoring.rules import effective_reward

    def hashed(**embedder):
        settings = Settings(embedder=EmbedderSettings(model=MINILM, **embedder))
        return config_hash(settings, effective_reward(settings.reward, None, settings.hardened))

    assert len({hashed(), hashed(backend="onnx"), hashed(backend="openvino"), hashed(dtype="float16")}) == 4
    assert hashed(export_dir="/elsewhere") == hashed()  # where the export lives decides no score


def test_a_missing_runtime_is_named(monkeypatch, exports):
    import builtins

    real_import = builtins.__import__

    def without_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError("no openvino")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_openvino)
    with pytest.raises(EmbedderError, match=r"medix-reward\[cpu-runtimes\]"):
        SentenceTransformerEncoder(EmbedderSettings(model=MINILM, backend="openvino", export_dir=str(exports)))
