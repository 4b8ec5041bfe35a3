"""Throughput and peak memory over request sizes (the scale rows)."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx

from medix_reward.api.app import create_app
from medix_reward.embedding.backends import (
    Encoder,
)
from medix_reward.settings import (
    Settings,
)
from medix_reward_tools.common import grpo_items
from medix_reward_tools.live import LiveServer

if TYPE_CHECKING:
    from medix_reward_tools.bench.run import BenchConfig


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
