"""The generated parts of docs/: the settings table (from `Settings`) and the benchmark tables (from
docs/benchmarks*.json: the result as `medix-reward bench` prints it, the targets, the judge client's cost and the
embedder backends per run). `medix-reward docs` writes them between their
markers; `medix-reward docs --check` (and tests/test_docs.py) fails when a page has drifted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from medix_reward.settings import Settings
from medix_reward.settings_doc import render_settings_table, splice
from medix_reward_tools import bench_doc
from medix_reward_tools.bench.report import _scale_table
from medix_reward_tools.bench.report import table as bench_table


def _fenced(text: str) -> str:
    return f"```\n{text.rstrip()}\n```"


# The runs docs/benchmarks.md reads, by column label: `make bench` first, the others beside it.
RUNS = {
    "`make bench`": "benchmarks.json",
    "[`--backend openvino`](benchmarks-openvino.json)": "benchmarks-openvino.json",
    "[httpx judge client](benchmarks-before-aiohttp.json)": "benchmarks-before-aiohttp.json",
}


def _benchmarks(root: Path) -> dict[str, str]:
    runs = [(label, json.loads((root / "docs" / name).read_text(encoding="utf-8"))) for label, name in RUNS.items()]
    results = runs[0][1]
    return {
        "bench-result": _fenced(bench_table(results)),
        "bench-targets": bench_doc.targets_table(runs) + "\n\n" + bench_doc.cross_run_line(runs[0], runs[1]),
        "bench-judge-cost": bench_doc.judge_cost_table(runs),
        "bench-backends": bench_doc.backends_table(runs[:2]),
        "bench-scale": _fenced("\n".join(_scale_table(results.get("scale", []))[2:])),
    }


# page → its generated blocks, by marker name
PAGES: dict[str, Callable[[Path], dict[str, str]]] = {
    "docs/operations.md": lambda _root: {"settings": render_settings_table(Settings)},
    "docs/benchmarks.md": _benchmarks,
}


def rendered(root: Path) -> dict[Path, str]:
    """Each page as it should read: its text with every generated block rendered afresh."""
    pages = {}
    for name, blocks in PAGES.items():
        path = root / name
        text = path.read_text(encoding="utf-8")
        for marker, block in blocks(root).items():
            text = splice(text, marker, block)
        pages[path] = text
    return pages


def stale(root: Path) -> list[Path]:
    return [path for path, text in rendered(root).items() if path.read_text(encoding="utf-8") != text]


def main(root: Path, check: bool) -> int:
    """Writes the pages (or, with check, only lists the stale ones); 1 when a page was stale under check."""
    drifted = stale(root)
    for path in drifted:
        print(f"{path}: {'stale, run `medix-reward docs`' if check else 'rewritten'}")
    if check:
        return 1 if drifted else 0
    for path, text in rendered(root).items():
        if path in drifted:
            path.write_text(text, encoding="utf-8")
    return 0
