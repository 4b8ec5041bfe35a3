"""Scoring a batch: pure checks, then the judge and the embedder at once over distinct pairs, then composition."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from medix_reward.checks import (
    CheckedItem,
    Tags,
    check_item,
    clean_answer,
    compose,
    modality_tag,
    split_ground_truth,
)
from medix_reward.embedder import EmbeddingCache, EmbedStats, cosine
from medix_reward.judge import JudgeClient, JudgeError, JudgeStats, Verdict
from medix_reward.metrics import Metrics
from medix_reward.settings import LimitsSettings, RewardSettings
from medix_reward_client.groups import group_stats
from medix_reward_client.schema import (
    COMPONENTS,
    Component,
    ComponentError,
    ComponentScores,
    ItemDetails,
    ItemResult,
    RewardItem,
    RewardOptions,
    RewardRequest,
    RewardResponse,
    StageTimes,
    Usage,
    Weights,
)

PRESET = "medix-r1"
_REFERENCE = RewardSettings()


class Overloaded(Exception):
    """More items in flight than the service admits; the caller should retry later."""


class JudgeDown(Exception):
    """Every judge call of the batch failed: the whole request fails rather than return a batch of nulls."""

    def __init__(self, error: JudgeError):
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class EffectiveReward:
    tags: Tags
    weights: Weights
    embed_threshold: float
    components: frozenset[Component]
    preset: str


def effective_reward(settings: RewardSettings, options: RewardOptions | None) -> EffectiveReward:
    weights, threshold, components = settings.weights, settings.embed_threshold, settings.components
    if options is not None:
        if options.weights is not None:
            weights = weights.model_copy(update=options.weights.model_dump(exclude_none=True))
        if options.embed_threshold is not None:
            threshold = options.embed_threshold
        if options.components is not None:
            components = options.components
    tags = Tags(settings.thinking_tag, settings.answer_tag)
    is_reference = (
        tags == Tags(_REFERENCE.thinking_tag, _REFERENCE.answer_tag)
        and weights == _REFERENCE.weights
        and threshold == _REFERENCE.embed_threshold
        and set(components) == set(COMPONENTS)
    )
    return EffectiveReward(tags, weights, threshold, frozenset(components), PRESET if is_reference else "custom")


def _truth(item: RewardItem) -> tuple[str | None, str]:
    if item.ground_truth is not None:
        return split_ground_truth(item.ground_truth)
    assert item.answer is not None  # the schema guarantees one of the two forms
    return (modality_tag(item.modality) if item.modality else None), clean_answer(item.answer)


def _check(item: RewardItem, tags: Tags) -> CheckedItem:
    true_modality, true_answer = _truth(item)
    return check_item(item.response, true_answer, true_modality, tags)


Pair = tuple[str, str]  # (predicted answer, true answer)


class RewardPipeline:
    def __init__(
        self,
        reward: RewardSettings,
        limits: LimitsSettings,
        judge: JudgeClient,
        embeddings: EmbeddingCache,
        metrics: Metrics | None = None,
    ):
        self.reward = reward
        self.limits = limits
        self.judge = judge
        self.embeddings = embeddings
        self.metrics = metrics
        self.inflight_items = 0
        self.inflight_requests = 0

    async def score(self, request: RewardRequest) -> RewardResponse:
        """Admission first: refuse at once (429) rather than let work pile up."""
        n = len(request.items)
        if self.inflight_requests >= self.limits.max_concurrent_requests:
            raise Overloaded(
                f"{self.inflight_requests} requests in flight; limit {self.limits.max_concurrent_requests}"
            )
        if self.inflight_items + n > self.limits.max_inflight_items:
            raise Overloaded(f"{self.inflight_items} items in flight; limit {self.limits.max_inflight_items}")
        self.inflight_items += n
        self.inflight_requests += 1
        self._gauge()
        try:
            response = await self._score(request)
        finally:
            self.inflight_items -= n
            self.inflight_requests -= 1
            self._gauge()
        if self.metrics is not None:
            _record(self.metrics, response)
        return response

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.inflight_items.set(self.inflight_items)

    async def _score(self, request: RewardRequest) -> RewardResponse:
        started = time.perf_counter()
        reward = effective_reward(self.reward, request.options)
        checked = [_check(item, reward.tags) for item in request.items]
        checks_done = time.perf_counter()

        needs_model = {(c.predicted_answer, c.true_answer) for c in checked if c.shortcut is None}
        judge_pairs = needs_model if "accuracy_llm" in reward.components else set()
        embed_pairs = needs_model if "accuracy_embed" in reward.components else set()
        judge_stats, embed_stats = JudgeStats(), EmbedStats()
        try:
            (verdicts, judge_s), (vectors, embed_s) = await asyncio.gather(
                self._judge_all(judge_pairs, judge_stats), self._embed_all(embed_pairs, embed_stats)
            )
        finally:
            if self.metrics is not None:
                _record_calls(self.metrics, judge_stats, embed_stats)
        if judge_pairs and all(isinstance(v, JudgeError) for v in verdicts.values()):
            raise JudgeDown(next(iter(verdicts.values())))  # type: ignore[arg-type]

        results = [_result(item, c, reward, verdicts, vectors) for item, c in zip(request.items, checked, strict=True)]
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
        return RewardResponse(preset=reward.preset, results=results, groups=group_stats(results), usage=usage)

    async def _judge_all(self, pairs: set[Pair], stats: JudgeStats) -> tuple[dict[Pair, Verdict | JudgeError], float]:
        started = time.perf_counter()
        ordered = list(pairs)
        outcomes = await asyncio.gather(
            *(self.judge.verdict(answer, truth, stats) for answer, truth in ordered), return_exceptions=True
        )
        verdicts: dict[Pair, Verdict | JudgeError] = {}
        for pair, outcome in zip(ordered, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, JudgeError):
                raise outcome
            verdicts[pair] = outcome
        return verdicts, time.perf_counter() - started

    async def _embed_all(self, pairs: set[Pair], stats: EmbedStats) -> tuple[dict[str, np.ndarray], float]:
        # An embedder failure is the service's own fault: it fails the request (EmbedderError → 500).
        started = time.perf_counter()
        vectors = await self.embeddings.embed({text for pair in pairs for text in pair}, stats)
        return vectors, time.perf_counter() - started


def _result(
    item: RewardItem,
    c: CheckedItem,
    reward: EffectiveReward,
    verdicts: dict[Pair, Verdict | JudgeError],
    vectors: dict[str, np.ndarray],
) -> ItemResult:
    scores: dict[Component, float | None] = dict.fromkeys(COMPONENTS)
    errors: dict[str, ComponentError] = {}
    judged: dict[str, object] = {}  # the judge's and the embedder's part of the details
    on = reward.components
    if "format" in on:
        scores["format"] = c.format
    if "modality" in on:
        scores["modality"] = c.modality
        if c.modality is None:
            errors["modality"] = ComponentError(
                code="no_true_modality",
                message="the ground truth names no modality: give '<TAG> answer', or `modality`, "
                "or leave modality out of `components`",
            )
    shortcut_score = None if c.shortcut is None else float(c.shortcut == "exact_match")
    pair = (c.predicted_answer, c.true_answer)
    if "accuracy_llm" in on:
        if shortcut_score is not None:
            scores["accuracy_llm"] = shortcut_score
        elif isinstance(verdict := verdicts[pair], JudgeError):
            errors["accuracy_llm"] = ComponentError(code=verdict.code, message=verdict.message)
        else:
            scores["accuracy_llm"] = 1.0 if verdict.yes else 0.0
            judged.update(judge_verdict="YES" if verdict.yes else "NO", judge_reply=verdict.reply,
                          judge_p_yes=verdict.p_yes, judge_cached=verdict.cached)  # fmt: skip
    if "accuracy_embed" in on:
        if shortcut_score is not None:
            scores["accuracy_embed"] = shortcut_score
        else:
            judged["cosine"] = similarity = cosine(vectors[pair[0]], vectors[pair[1]])
            scores["accuracy_embed"] = 1.0 if similarity >= reward.embed_threshold else 0.0
    details = ItemDetails(
        predicted_answer=c.predicted_answer,
        true_answer=c.true_answer,
        predicted_modality=c.predicted_modality,
        true_modality=c.true_modality,
        shortcut=c.shortcut,
        **judged,
    )
    return ItemResult(
        id=item.id,
        group_id=item.group_id,
        overall=compose(scores, reward.weights, reward.components),
        scores=ComponentScores(**scores),
        details=details,
        errors=errors,
    )


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
