"""Offline scoring: a JSONL file of items through the service, resumably.

Each input line is one item (`response` and `ground_truth`, or `answer` + `modality`; optional `id`,
`group_id`). Each output line is `{"line": N, ...result}`. Lines already in the output are skipped, so
an interrupted run continues where it stopped; a chunk the service refused is left out and retried on
the next run.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from medix_reward_client._core import RewardError
from medix_reward_client.client import AsyncRewardClient
from medix_reward_client.schema import COMPONENTS, ItemResult, RewardItem


@dataclass
class Summary:
    total: int = 0
    skipped: int = 0
    scored: int = 0
    sums: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, result: ItemResult) -> None:
        values = {"overall": result.overall, **result.scores.model_dump()}
        for name, value in values.items():
            if value is not None:
                self.sums[name] += value
                self.counts[name] += 1
        for error in result.errors.values():
            self.failures[error.code] += 1
        self.scored += 1

    def table(self) -> str:
        rows = [f"{'component':<16}{'mean':>8}{'n':>8}"]
        for name in ("overall", *COMPONENTS):
            n = self.counts[name]
            mean = f"{self.sums[name] / n:.4f}" if n else "-"
            rows.append(f"{name:<16}{mean:>8}{n:>8}")
        rows.append(f"items: {self.total} in file, {self.skipped} already done, {self.scored} scored now")
        failures = ", ".join(f"{code}: {n}" for code, n in self.failures.most_common()) or "none"
        rows.append(f"failures: {failures}")
        return "\n".join(rows)


def _done_lines(out_path: Path) -> set[int]:
    if not out_path.exists():
        return set()
    done = set()
    for text in out_path.read_text(encoding="utf-8").splitlines():
        try:
            done.add(int(json.loads(text)["line"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by an interruption: that item is scored again
    return done


async def score_file(
    in_path: Path,
    out_path: Path,
    *,
    url: str | None = None,
    chunk_size: int = 256,
    max_concurrency: int = 4,
    progress: TextIO = sys.stderr,
    client: AsyncRewardClient | None = None,
) -> Summary:
    summary = Summary()
    done = _done_lines(out_path)
    todo: list[tuple[int, RewardItem]] = []
    for number, text in enumerate(in_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        summary.total += 1
        if number in done:
            summary.skipped += 1
        else:
            todo.append((number, RewardItem.model_validate_json(text)))
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
    started = time.perf_counter()
    slots = asyncio.Semaphore(max_concurrency)
    service = client or AsyncRewardClient(url, chunk_size=chunk_size)

    with out_path.open("a", encoding="utf-8") as out:

        async def run(chunk: list[tuple[int, RewardItem]]) -> None:
            async with slots:
                try:
                    response = await service.score([item for _, item in chunk])
                except RewardError as exc:
                    summary.failures[type(exc).__name__] += len(chunk)
                    return
            for (number, _), result in zip(chunk, response.results, strict=True):
                out.write(json.dumps({"line": number, **result.model_dump(mode="json")}) + "\n")
                summary.add(result)
            out.flush()
            rate = summary.scored / max(time.perf_counter() - started, 1e-9)
            progress.write(f"\r{summary.scored + summary.skipped}/{summary.total} items, {rate:.1f} items/s")
            progress.flush()

        try:
            await asyncio.gather(*(run(chunk) for chunk in chunks))
        finally:
            if client is None:
                await service.aclose()
    progress.write("\n")
    return summary
