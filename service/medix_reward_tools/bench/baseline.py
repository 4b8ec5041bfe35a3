"""The benchmark's reference points: the serial baseline (what `medical.py` does), the service in process, the
judge alone at the same concurrency, and a judge process of its own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

from medix_reward.embedding.backends import (
    Encoder,
    cosine,
)
from medix_reward.judge.client import JudgeClient, open_judge_transport
from medix_reward.judge.prompts import chat_request, parse_reply
from medix_reward.judge.types import JudgeReply, JudgeStats
from medix_reward.scoring.checks import Tags, check_item, compose, split_ground_truth
from medix_reward.scoring.pipeline import open_pipeline
from medix_reward.settings import (
    JudgeSettings,
    Settings,
)
from medix_reward_client.schema import COMPONENTS, RewardRequest, Weights
from medix_reward_tools.common import free_port, wait_until_ready


def serial_baseline(
    items: list[dict[str, Any]], judge: JudgeSettings, encoder: Encoder, threshold: float
) -> tuple[list[float | None], float, int]:
    """MediX-R1's `medical.py`, item by item: one blocking judge call and one two-sentence encode each.

    An independent re-implementation of the reference reward loop, kept apart from the service's pipeline
    on purpose: it shares none of `RewardPipeline`, `JudgeClient`, the micro-batcher or the caches, so the
    benchmark's "scores differing from the baseline" compares two implementations. It does reuse the pure
    functions of `medix_reward.scoring.checks` (extraction, format, modality, composition) and the judge's
    request/reply format (`chat_request`, `parse_reply`): those are what the scores are defined by, not the
    serving machinery under test."""
    tags, weights, scores_out, calls = Tags(), Weights(), [], 0
    started = time.perf_counter()
    with httpx.Client(timeout=judge.timeout_s) as http:
        for item in items:
            true_modality, true_answer = split_ground_truth(item["ground_truth"])
            checked = check_item(item["response"], true_answer, true_modality, tags)
            scores: dict[str, float | None] = {"format": checked.format, "modality": checked.modality}
            if checked.shortcut is not None:
                scores["accuracy_llm"] = scores["accuracy_embed"] = 1.0 if checked.shortcut == "exact_match" else 0.0
            else:
                body = chat_request(judge, checked.predicted_answer, checked.true_answer)
                reply = http.post(f"{judge.base_urls[0]}/chat/completions", json=body)
                calls += 1
                verdict = parse_reply(JudgeReply(reply.status_code, reply.headers, reply.content))
                scores["accuracy_llm"] = 1.0 if verdict.yes else 0.0
                pair = encoder.encode([checked.predicted_answer, checked.true_answer])
                scores["accuracy_embed"] = 1.0 if cosine(pair[0], pair[1]) >= threshold else 0.0
            scores_out.append(compose(scores, weights, frozenset(COMPONENTS)))
    return scores_out, time.perf_counter() - started, calls


async def _in_process(settings: Settings, encoder: Encoder, request: RewardRequest, warm_repeats: int = 0):
    """The pipeline with cold caches, then `warm_repeats` more runs of the same request (warm caches)."""
    async with open_pipeline(settings, encoder=encoder) as pipeline:  # warm, as the service's start-up
        runs = []
        for _ in range(1 + warm_repeats):
            started = time.perf_counter()
            response = await pipeline.score(request)
            runs.append((response, time.perf_counter() - started))
        return runs


async def _judge_alone(judge: JudgeSettings, pairs: list[tuple[str, str]]) -> float:
    settings = judge.model_copy(update={"cache_size": 0})
    http = open_judge_transport(settings)
    try:
        client, stats = JudgeClient(settings, http), JudgeStats()
        started = time.perf_counter()
        await asyncio.gather(*(client.verdict(a, t, stats) for a, t in pairs))
        return time.perf_counter() - started
    finally:
        await http.aclose()


@dataclass
class JudgeProcess:
    """The scripted judge as its own process (as a real judge is), with latency L and capacity C."""

    latency_ms: float
    capacity: int
    url: str = ""
    _process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> JudgeProcess:
        port = free_port()
        command = [sys.executable, "-m", "medix_reward.cli", "scripted-judge", "--port", str(port),
                   "--latency-ms", str(self.latency_ms), "--capacity", str(self.capacity)]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}/v1"
        try:
            wait_until_ready(f"{self.url}/models", process=self._process, timeout_s=30, interval_s=0.1,
                             what="the scripted judge")  # fmt: skip
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(timeout=10)
