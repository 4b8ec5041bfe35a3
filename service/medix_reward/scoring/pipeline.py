"""Scoring a batch, the I/O part: the judge and the embedder at once over the distinct pairs that need a
model, then the pure rule (`rules.score_item`) per item. Admission happens before this (`admission.py`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np

from medix_reward import __version__
from medix_reward.api.errors import raise_if_judge_down
from medix_reward.api.metrics import Metrics
from medix_reward.api.telemetry import RewardTelemetry, tally
from medix_reward.embedding.backends import Encoder, SentenceTransformerEncoder, cosine
from medix_reward.embedding.batcher import MicroBatcher
from medix_reward.embedding.cache import EmbeddingCache, EmbedStats
from medix_reward.evaluation.evaluate import Evaluator
from medix_reward.judge.client import JudgeClient, open_judge_transport
from medix_reward.judge.http import JudgeTransport
from medix_reward.judge.prompts import JudgeAsk
from medix_reward.judge.types import JUDGE_DOWN_CODES, JudgeError, JudgeStats, Verdict
from medix_reward.scoring.checks import CheckedItem
from medix_reward.scoring.rules import EffectiveReward, Pair, check, effective_reward, model_pair, score_item
from medix_reward.settings import Settings
from medix_reward_client.groups import group_stats
from medix_reward_client.schema import (
    GroupStats,
    ItemResult,
    RewardItem,
    RewardRequest,
    RewardResponse,
    StageTimes,
    Usage,
)

Verdicts = dict[Pair, Verdict | JudgeError]
Vectors = dict[str, np.ndarray]

# A request this large has its pure CPU work (checks; scores, group statistics and metrics) done on a worker
# thread, so that the event loop keeps serving other requests and /health meanwhile (the GIL is handed back
# every few ms); a small one is not worth the hand-off.
THREAD_ITEMS = 64
THREAD_TEXT_CHARS = 1_000_000


def is_large(request: RewardRequest) -> bool:
    if len(request.items) > THREAD_ITEMS:
        return True
    chars = 0
    for item in request.items:
        chars += len(item.response) + len(item.ground_truth or item.answer or "")
    return chars > THREAD_TEXT_CHARS


def every_call_failed(verdicts: Verdicts) -> JudgeError | None:
    """The first error, when every pair the judge could have answered failed for a reason that may be the
    judge's own (unreachable, timing out, 5xx, garbage). A pair whose input the judge refused
    (judge_rejected_input) is that item's failure: it neither proves nor disproves the judge down. Whether the
    judge is down is the replicas' health to say (`JudgeClient.health`), not this request's: with one item,
    every call of the request failing is what one bad item looks like."""
    errors = [v for v in verdicts.values() if isinstance(v, JudgeError) and v.code in JUDGE_DOWN_CODES]
    answered = [v for v in verdicts.values() if isinstance(v, Verdict)]
    return errors[0] if errors and not answered else None


def config_hash(settings: Settings, reward: EffectiveReward) -> str:
    """A fingerprint of everything that decides a score: version, judge, prompt, embedder, effective reward."""
    decisive = {
        "version": __version__,
        "prompt_version": reward.judge_ask.prompt_version,
        "judge": settings.judge.model_dump(
            mode="json", include={"model", "max_tokens", "chat_template_kwargs", "max_answer_chars"}
        ),
        "embedder": settings.embedder.model_dump(mode="json", include={"model", "backend", "dtype"}),
        "reward": reward.fingerprint(),
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]


class RewardPipeline:
    def __init__(
        self,
        settings: Settings,
        judge: JudgeClient,
        embeddings: EmbeddingCache,
        metrics: Metrics | None = None,
        evaluator: Evaluator | None = None,
        telemetry: RewardTelemetry | None = None,
    ):
        self.settings = settings
        self.telemetry = telemetry
        self.judge = judge
        self.embeddings = embeddings
        self.metrics = metrics
        self.evaluator = evaluator

    def reward_for(self, request: RewardRequest | None) -> EffectiveReward:
        options = request.options if request is not None else None
        return effective_reward(self.settings.reward, options, self.settings.hardened)

    async def score(self, request: RewardRequest) -> RewardResponse:
        started = time.perf_counter()
        reward = self.reward_for(request)
        options = request.options
        deadline_s = (
            options.deadline_s if options is not None and options.deadline_s else self.settings.judge.deadline_s
        )
        large = is_large(request)
        if large:
            checked = await asyncio.to_thread(_check_all, request.items, reward)
        else:
            checked = _check_all(request.items, reward)
        checks_done = time.perf_counter()

        needs_model = {pair for c in checked if (pair := model_pair(c)) is not None}
        judge_pairs = needs_model if "accuracy_llm" in reward.components else set()
        embed_pairs = needs_model if reward.needs_similarity else set()
        judge_stats, embed_stats = JudgeStats(), EmbedStats()
        try:
            (verdicts, swapped, judge_s), (vectors, embed_s) = await asyncio.gather(
                self._judge_all(judge_pairs, reward, judge_stats, deadline_s),
                self._embed_all(embed_pairs, embed_stats),
            )
        finally:
            if self.metrics is not None:
                _record_calls(self.metrics, judge_stats, embed_stats)
        error = every_call_failed(verdicts)
        if error is not None:
            await raise_if_judge_down(self.judge.health, error.code, error.message)

        scoring = (request.items, checked, reward, verdicts, swapped, vectors)
        results, groups = await asyncio.to_thread(_score_all, *scoring) if large else _score_all(*scoring)
        usage = Usage(
            items=len(results),
            judge_pairs=len(judge_pairs),
            judge_calls=judge_stats.calls,
            judge_cache_hits=judge_stats.cache_hits,
            texts_encoded=embed_stats.encoded,
            embed_cache_hits=embed_stats.cache_hits,
            seconds=StageTimes(
                checks_s=checks_done - started,
                judge_s=judge_s,
                embed_s=embed_s,
                total_s=time.perf_counter() - started,
            ),
        )
        response = RewardResponse(
            preset=reward.preset,
            results=results,
            groups=groups,
            usage=usage,
            version=__version__,
            config_hash=config_hash(self.settings, reward),
        )
        if self.metrics is not None:
            if large:
                await asyncio.to_thread(_record, self.metrics, response)
            else:
                _record(self.metrics, response)
        if self.telemetry is not None:
            counting = (request.items, results, reward.preset, self.telemetry.disagree_below(reward.embed_threshold))
            self.telemetry.record(await asyncio.to_thread(tally, *counting) if large else tally(*counting))
        return response

    async def _judge_all(
        self, pairs: set[Pair], reward: EffectiveReward, stats: JudgeStats, deadline_s: float | None
    ) -> tuple[Verdicts, Verdicts, float]:
        """The verdict of every pair and, under the swap check, the swapped verdict of every YES; a pair not
        judged within the deadline is a judge_deadline error, the others keep their verdicts."""
        started = time.perf_counter()
        deadline = None if deadline_s is None else asyncio.get_running_loop().time() + deadline_s
        ask = reward.judge_ask
        verdicts = await self._verdicts(list(pairs), ask, stats, deadline)
        swapped: Verdicts = {}
        if reward.defences.swap_check:
            yes = [pair for pair, v in verdicts.items() if isinstance(v, Verdict) and v.yes]
            by_swap = await self._verdicts([(truth, answer) for answer, truth in yes], ask, stats, deadline)
            swapped = {(answer, truth): v for (truth, answer), v in by_swap.items()}
        return verdicts, swapped, time.perf_counter() - started

    async def _verdicts(self, pairs: list[Pair], ask: JudgeAsk, stats: JudgeStats, deadline: float | None) -> Verdicts:
        async def verdict(answer: str, truth: str) -> Verdict:
            try:
                async with asyncio.timeout_at(deadline):
                    return await self.judge.verdict(answer, truth, stats, ask)
            except TimeoutError:
                raise JudgeError("judge_deadline", "not judged within the request's deadline") from None

        outcomes = await asyncio.gather(*(verdict(answer, truth) for answer, truth in pairs), return_exceptions=True)
        verdicts: Verdicts = {}
        for pair, outcome in zip(pairs, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, JudgeError):
                raise outcome
            verdicts[pair] = outcome
        return verdicts

    async def _embed_all(self, pairs: set[Pair], stats: EmbedStats) -> tuple[Vectors, float]:
        # An embedder failure is the service's own fault: it fails the request (EmbedderError → 500).
        started = time.perf_counter()
        vectors = await self.embeddings.embed({text for pair in pairs for text in pair}, stats)
        return vectors, time.perf_counter() - started


def _check_all(items: list[RewardItem], reward: EffectiveReward) -> list[CheckedItem]:
    return [check(item, reward) for item in items]


def _score_all(
    items: list[RewardItem],
    checked: list[CheckedItem],
    reward: EffectiveReward,
    verdicts: Verdicts,
    swapped: Verdicts,
    vectors: Vectors,
) -> tuple[list[ItemResult], list[GroupStats]]:
    results = []
    for item, c in zip(items, checked, strict=True):
        pair = model_pair(c)
        similarity = None
        if pair is not None and pair[0] in vectors:
            similarity = cosine(vectors[pair[0]], vectors[pair[1]])
        verdict = verdicts.get(pair) if pair is not None else None
        swap = swapped.get(pair) if pair is not None else None
        results.append(score_item(item, c, reward, verdict, similarity, swap))
    return results, group_stats(results)


@asynccontextmanager
async def open_pipeline(
    settings: Settings,
    *,
    encoder: Encoder | None = None,
    judge_transport: JudgeTransport | None = None,
    metrics: Metrics | None = None,
    telemetry: RewardTelemetry | None = None,
) -> AsyncIterator[RewardPipeline]:
    """A pipeline with its encoder loaded and warm, its micro-batcher running and its judge clients open;
    all of it closed on exit. The app's lifespan and the benchmark both run the service's parts this way."""
    model = encoder or await asyncio.to_thread(SentenceTransformerEncoder, settings.embedder)
    embedder = settings.embedder
    batcher = MicroBatcher(
        model, embedder.max_batch_size, embedder.max_wait_ms / 1000, metrics, embedder.max_batch_chars
    )
    batcher.start()
    http = judge_transport or open_judge_transport(settings.judge)
    shared = None
    if settings.cache.redis_url is not None:
        from medix_reward.judge.shared_cache import SharedVerdictCache

        shared = SharedVerdictCache(settings.cache, metrics)
    judge = JudgeClient(settings.judge, http, shared=shared)
    # The evaluation judge has a client of its own, even on the reward judge's replicas: its calls are longer
    # (a 3-round conversation, a 180 s timeout), and under the reward's latency target (15 s) its adaptive
    # limit would fall to one call in flight on a slow judge (seen on the CPU judge).
    evaluation = settings.evaluate.judge_settings(settings.judge)
    evaluation_http = judge_transport or open_judge_transport(evaluation)
    evaluator = Evaluator(settings.evaluate, JudgeClient(evaluation, evaluation_http), evaluation.model)
    try:
        # Warm up on the encoder's own worker thread: torch sets up its thread pool per calling thread.
        await batcher.embed(["warm-up"])
        embeddings = EmbeddingCache(batcher, settings.embedder.cache_size, settings.embedder.cache_bytes)
        yield RewardPipeline(settings, judge, embeddings, metrics, evaluator, telemetry)
    finally:
        await batcher.stop()
        await asyncio.gather(judge.aclose(), evaluator.judge.aclose())
        if judge_transport is None:  # an injected one is its owner's to close
            await asyncio.gather(http.aclose(), evaluation_http.aclose())
        if shared is not None:
            await shared.close()


def _record_calls(metrics: Metrics, judge: JudgeStats, embed: EmbedStats) -> None:
    for outcome, count in judge.outcomes.items():
        metrics.judge_calls.labels(outcome).inc(count)
    metrics.judge_retries.inc(judge.retries)
    metrics.judge_cache.labels("hit").inc(judge.cache_hits)
    metrics.judge_cache.labels("miss").inc(judge.calls - judge.retries)
    metrics.embed_cache.labels("hit").inc(embed.cache_hits)
    metrics.embed_cache.labels("miss").inc(embed.encoded)


def _record(metrics: Metrics, response: RewardResponse) -> None:
    seconds = response.usage.seconds
    for stage, value in (("checks", seconds.checks_s), ("judge", seconds.judge_s), ("embed", seconds.embed_s)):
        metrics.stage_seconds.labels(stage).observe(value)
    metrics.items.inc(len(response.results))
    for result in response.results:
        for name, value in result.scores.model_dump().items():
            if value is not None:
                metrics.component_score.labels(name).observe(value)
        for name, error in result.errors.items():
            metrics.unscored.labels(name, error.code).inc()
