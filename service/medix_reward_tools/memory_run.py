"""The hostile run of issue 24 on memory: concurrent requests of many distinct long answers, then the service's
resident memory against its cache budgets.

    python -m medix_reward_tools.memory_run --requests 12 --answers 1900      # the run as found (hours on CPU)

Every answer is new, so nothing is a cache hit, and each is as long as `max_response_chars` allows. The bound:
resident memory once idle ≤ 1.3 × (the cache budgets + the process at rest after one small request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import dataclass

import httpx

from medix_reward_tools.scripted_judge import ScriptedJudge
from medix_reward_tools.soak import cache_bytes, rss_mb, served

BOUND = 1.3
_SMALL = {"response": "<X_RAY> <thinking>r</thinking> <answer>Mass</answer>", "ground_truth": "<X_RAY> Big mass"}


@dataclass
class MemoryReport:
    requests: int
    answers: int
    budgets_mb: float
    rest_mb: float = 0.0
    peak_mb: float = 0.0
    idle_mb: float = 0.0
    cache_mb: float = 0.0
    seconds: float = 0.0
    statuses: tuple[int, ...] = ()

    @property
    def bound_mb(self) -> float:
        return BOUND * (self.budgets_mb + self.rest_mb)

    @property
    def ratio(self) -> float:
        """Resident memory once idle over (the budgets + the process at rest): the bound is `BOUND`."""
        return self.idle_mb / (self.budgets_mb + self.rest_mb)

    def table(self) -> str:
        return (
            f"{self.requests} requests × {self.answers} distinct answers in {self.seconds:.0f} s "
            f"(statuses {sorted(set(self.statuses))}): RSS at rest {self.rest_mb:.0f} MB, peak {self.peak_mb:.0f} MB, "
            f"idle after {self.idle_mb:.0f} MB; caches hold {self.cache_mb:.1f} MB of {self.budgets_mb:.0f} MB; "
            f"bound {BOUND} × (budgets + rest) = {self.bound_mb:.0f} MB; ratio {self.ratio:.2f}"
        )


def _body(rng: random.Random, answers: int, chars: int) -> str:
    items = []
    for _ in range(answers):
        words = " ".join(f"finding{rng.randrange(1 << 40):x}" for _ in range(chars // 16))[:chars]
        items.append({"response": f"<X_RAY> <thinking>r</thinking> <answer>{words}</answer>", "ground_truth": "x"})
    return json.dumps({"items": items})


def run_memory(
    requests: int = 12, answers: int = 1900, chars: int = 32_000, cache_bytes_each: int = 2**20, idle_s: float = 4.0
) -> MemoryReport:
    """`requests` bodies sent at once to `medix-reward serve` (its own process) with both caches' budgets set to
    `cache_bytes_each`; resident memory sampled throughout and after `idle_s` of idleness."""
    budgets = {"MEDIX_REWARD_JUDGE__CACHE_BYTES": str(cache_bytes_each)}
    budgets["MEDIX_REWARD_EMBEDDER__CACHE_BYTES"] = str(cache_bytes_each)
    report = MemoryReport(requests, answers, budgets_mb=2 * cache_bytes_each / 2**20)
    rng = random.Random(0)
    bodies = [_body(rng, answers, chars) for _ in range(requests)]
    with ScriptedJudge(latency_s=0.001, capacity=256) as judge, served(judge, budgets) as (url, pid):
        httpx.post(f"{url}/reward", json={"items": [_SMALL]}, timeout=60).raise_for_status()
        time.sleep(idle_s)
        report.rest_mb = report.peak_mb = rss_mb(pid)

        async def drive() -> tuple[int, ...]:
            async with httpx.AsyncClient(timeout=3600) as http:

                async def sample() -> None:
                    while True:
                        report.peak_mb = max(report.peak_mb, rss_mb(pid))
                        await asyncio.sleep(0.25)

                sampler = asyncio.create_task(sample())
                headers = {"content-type": "application/json"}
                posts = (http.post(f"{url}/reward", content=body, headers=headers) for body in bodies)
                replies = await asyncio.gather(*posts)
                sampler.cancel()
                return tuple(reply.status_code for reply in replies)

        started = time.perf_counter()
        report.statuses = asyncio.run(drive())
        report.seconds = time.perf_counter() - started
        time.sleep(idle_s)
        report.idle_mb = rss_mb(pid)
        report.cache_mb = cache_bytes(url) / 2**20
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--answers", type=int, default=1900)
    parser.add_argument("--chars", type=int, default=32_000)
    parser.add_argument("--cache-mb", type=float, default=1.0, help="each cache's budget")
    args = parser.parse_args()
    print(run_memory(args.requests, args.answers, args.chars, int(args.cache_mb * 2**20)).table())


if __name__ == "__main__":
    main()
