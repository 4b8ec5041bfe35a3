"""Properties of the whole pipeline on arbitrary input: total, in range, order and count kept, and
batching/deduplication never changes a score versus scoring each item alone."""

from __future__ import annotations

import asyncio
import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medix_reward_tools.scripted_judge import read_pair, same_meaning

from medix_reward.embedding.batcher import MicroBatcher
from medix_reward.embedding.cache import EmbeddingCache
from medix_reward.judge.client import JudgeClient
from medix_reward.scoring.pipeline import RewardPipeline
from medix_reward.settings import JudgeSettings, Settings
from medix_reward_client.schema import RewardItem, RewardRequest
from tests.helpers import CharEncoder, HandlerTransport


def judge_by_rule(request: httpx.Request) -> httpx.Response:
    truth, answer = read_pair(json.loads(request.content)["messages"])
    content = "YES" if same_meaning(answer, truth) else "NO"
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


async def score_batch_and_singly(items: list[RewardItem]):
    async def with_pipeline(fn, cache_size):
        batcher = MicroBatcher(CharEncoder(), max_batch_size=4, max_wait_s=0.001)
        batcher.start()
        settings = Settings(judge=JudgeSettings(cache_size=cache_size))
        judge = JudgeClient(settings.judge, HandlerTransport(judge_by_rule))
        pipeline = RewardPipeline(settings, judge, EmbeddingCache(batcher, cache_size, 2**30))
        try:
            return await fn(pipeline)
        finally:
            await batcher.stop()

    async def batch(pipeline):
        return (await pipeline.score(RewardRequest(items=items))).results

    async def singly(pipeline):
        return [(await pipeline.score(RewardRequest(items=[item]))).results[0] for item in items]

    return await with_pipeline(batch, 1000), await with_pipeline(singly, 0)


ANSWERS = ["Pneumothorax", "pneumothorax", "Left pneumothorax", "Mass", "A", "Dx: mass", "Gallstones", ""]
TRUTHS = ["<X_RAY> Pneumothorax", "<CT_SCAN> Mass", "Gallstones", "<ULTRASOUND> Gallstones."]
FRAGMENTS = ["<thinking>", "</thinking>", "<answer>", "</answer>", "<X_RAY>", " ", "\n", "/", ".", "r"]
response = st.one_of(
    st.builds(lambda pre, ans: f"{pre}<thinking>r</thinking><answer>{ans}</answer>",
              st.sampled_from(["<X_RAY> ", "<ct_scan>", ""]), st.sampled_from(ANSWERS)),
    st.lists(st.sampled_from(FRAGMENTS + ANSWERS), max_size=12).map("".join),
    st.text(max_size=60),
)  # fmt: skip
item = st.builds(lambda r, t, g: RewardItem(response=r, ground_truth=t, group_id=g), response,
                 st.sampled_from(TRUTHS), st.integers(0, 2))  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(item, min_size=1, max_size=24))
def test_batch_equals_one_by_one(items):
    batched, single = asyncio.run(score_batch_and_singly(items))
    assert len(batched) == len(items) == len(single)
    for b, s in zip(batched, single, strict=True):
        assert b.scores == s.scores and b.overall == s.overall and b.errors.keys() == s.errors.keys()
        assert b.details.cosine == s.details.cosine and b.details.predicted_answer == s.details.predicted_answer
        assert b.overall is None or 0.0 <= b.overall <= 1.0
        assert all(v is None or 0.0 <= v <= 1.0 for v in b.scores.model_dump().values())
