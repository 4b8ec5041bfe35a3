"""Sentence embeddings: a micro-batcher over one encoder thread.

Texts from all concurrent requests are queued; one consumer takes up to `max_batch_size` of them
(waiting at most `max_wait_ms` for a batch to fill), encodes them on a single worker thread, and
resolves each caller's future. A failed batch is encoded again text by text, so that only the owner of a
text the encoder cannot take gets the error, not every request that happened to share its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from medix_reward.api.metrics import Metrics
from medix_reward.embedding.backends import EmbedderError, Encoder

log = logging.getLogger(__name__)


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
