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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from medix_reward_client._core import RewardError
from medix_reward_client.client import AsyncRewardClient
from medix_reward_client.schema import COMPONENTS, ItemResult, RewardItem

T = TypeVar("T")
R = TypeVar("R")


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


def read_rows(out_path: Path) -> dict[int, dict[str, Any]]:
    """The last row written for each input line number (a later run's row supersedes an earlier one)."""
    rows: dict[int, dict[str, Any]] = {}
    if not out_path.exists():
        return rows
    for text in out_path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(text)
            rows[int(row["line"])] = row
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by an interruption: that item is done again
    return rows


def pending(in_path: Path, done: set[int], parse: Callable[[str], T]) -> tuple[int, int, list[tuple[int, T]]]:
    """(items in the file, items already done, the rest numbered by line) of a JSONL input."""
    total = skipped = 0
    todo: list[tuple[int, T]] = []
    for number, text in enumerate(in_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        total += 1
        if number in done:
            skipped += 1
        else:
            todo.append((number, parse(text)))
    return total, skipped, todo


@dataclass
class Progress:
    """One line, rewritten in place: done of total, the rate of this run and the time left at that rate."""

    total: int
    skipped: int
    unit: str = "items"
    stream: TextIO = sys.stderr
    done: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, n: int) -> None:
        self.done += n
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.skipped - self.done
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        self.stream.write(
            f"\r{self.done + self.skipped}/{self.total} {self.unit}, {rate:.1f} {self.unit}/s, ETA {eta}   "
        )
        self.stream.flush()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


async def run_chunks(
    todo: list[tuple[int, T]],
    out_path: Path,
    *,
    chunk_size: int,
    max_concurrency: int,
    send: Callable[[list[T]], Awaitable[list[R]]],
    row: Callable[[R], dict[str, Any]],
    on_result: Callable[[R], None],
    on_refused: Callable[[list[tuple[int, T]], RewardError], None],
    progress: Progress,
) -> None:
    """Sends `todo` in chunks, `max_concurrency` at once, appending `{"line": N, **row(result)}` per result as each
    chunk comes back (flushed), so an interruption loses at most the chunks in flight. A chunk the service
    refuses is left out (`on_refused`) and done on the next run."""
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
    slots = asyncio.Semaphore(max_concurrency)
    with out_path.open("a", encoding="utf-8") as out:

        async def run(chunk: list[tuple[int, T]]) -> None:
            async with slots:
                try:
                    results = await send([item for _, item in chunk])
                except RewardError as exc:
                    on_refused(chunk, exc)
                    return
            for (number, _), result in zip(chunk, results, strict=True):
                out.write(json.dumps({"line": number, **row(result)}) + "\n")
                on_result(result)
            out.flush()
            progress.add(len(chunk))

        await asyncio.gather(*(run(chunk) for chunk in chunks))
    progress.stream.write("\n")


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
    summary.total, summary.skipped, todo = pending(in_path, set(read_rows(out_path)), RewardItem.model_validate_json)
    service = client or AsyncRewardClient(url, chunk_size=chunk_size)

    async def send(items: list[RewardItem]) -> list[ItemResult]:
        return (await service.score(items)).results

    def refused(chunk: list[tuple[int, RewardItem]], exc: RewardError) -> None:
        summary.failures[type(exc).__name__] += len(chunk)

    try:
        await run_chunks(
            todo, out_path, chunk_size=chunk_size, max_concurrency=max_concurrency, send=send,
            row=lambda result: result.model_dump(mode="json"), on_result=summary.add, on_refused=refused,
            progress=Progress(summary.total, summary.skipped, stream=progress),
        )  # fmt: skip
    finally:
        if client is None:
            await service.aclose()
    return summary
