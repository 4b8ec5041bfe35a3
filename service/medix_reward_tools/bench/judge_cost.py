"""The judge client's CPU per call: ours against plain httpx and aiohttp clients, at the same concurrency."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import httpx

from medix_reward.judge.client import JudgeClient, open_judge_transport
from medix_reward.judge.prompts import chat_request
from medix_reward.judge.types import JudgeStats
from medix_reward.settings import (
    JudgeSettings,
)
from medix_reward_tools.bench.baseline import JudgeProcess


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
