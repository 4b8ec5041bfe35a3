"""The Markdown tables of docs/benchmarks.md, rendered from the runs' JSON (what `medix-reward bench --json`
writes): the targets per run, the judge client's CPU per call, the embedder backends. Pure: results in, text out.

A run is (label, results). The first run is the reference one (`make bench`, torch); the others are read beside it.
"""

from __future__ import annotations

from typing import Any

Run = tuple[str, dict[str, Any]]


def _verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def _target_cells(results: dict[str, Any]) -> list[str]:
    b, s, j, e = (results[k] for k in ("baseline", "service_in_process", "judge", "embed"))
    overload = {row["adaptive"]: row["goodput"] for row in results.get("overload", [])}
    items, mismatches, overhead = results["items"], results["score_mismatches_vs_baseline"], results["overhead_warm_s"]
    return [
        f"{_verdict(results['speedup'] >= 30)}: {results['speedup']:.1f}× ({s['seconds_p50']:.2f} s vs "
        f"{b['seconds_p50']:.1f} s)",
        f"{b['seconds_p50'] / e['direct_s']:.1f}× ({b['seconds_p50']:.1f} s / {e['direct_s']:.2f} s)",
        f"{_verdict(results['service_over_direct_encode'] <= 1.3)}: {results['service_over_direct_encode']:.2f}×",
        f"{_verdict(mismatches == 0)}: {mismatches} of {items} differ",
        f"{_verdict(j['phase_over_floor'] <= 1.1)}: {j['phase_over_floor']:.2f}×; the judge driven alone "
        f"{j['alone_over_floor']:.2f}×",
        f"{_verdict(e['ratio'] >= 0.9)}: {e['ratio']:.2f}× ({e['service_isolated_texts_per_s']:.0f} vs "
        f"{e['direct_texts_per_s']:.0f} texts/s)",
        f"{_verdict(overhead <= 0.05)}: {overhead * 1000:.1f} ms ({overhead / items * 1e6:.0f} µs per item)",
        f"{_verdict(overload.get(True, 0) >= 0.9)}: {overload.get(True, 0):.0%} (fixed limit: "
        f"{overload.get(False, 0):.0%})",
    ]


TARGETS = [
    "service ≥ 30× the serial baseline",
    "the ceiling: baseline / one direct batched encode of the distinct texts",
    "service ≤ 1.3× one direct encode (same backend)",
    "scores identical to the baseline",
    "judge phase ≤ 1.1× ceil(pairs/C)·L",
    "micro-batched embedding ≥ 0.9× direct encode",
    "service overhead ≤ 50 ms per batch (instant judge, warm caches)",
    "adaptive limit: goodput ≥ 90% of the judge's capacity under overload",
]


def targets_table(runs: list[Run]) -> str:
    """One row per target, one column per run."""
    columns = [_target_cells(results) for _, results in runs]
    lines = ["| Target | " + " | ".join(label for label, _ in runs) + " |", "| --- |" + " --- |" * len(runs)]
    for i, target in enumerate(TARGETS):
        lines.append(f"| {target} | " + " | ".join(column[i] for column in columns) + " |")
    return "\n".join(lines)


def cross_run_line(reference: Run, other: Run) -> str:
    """The other run's service time against the reference run's serial baseline (e.g. OpenVINO against torch)."""
    (label, ref), (other_label, run) = reference, other
    service, baseline = run["service_in_process"]["seconds_p50"], ref["baseline"]["seconds_p50"]
    return (
        f"The {other_label} service ({service:.2f} s) against the {label} serial baseline ({baseline:.1f} s): "
        f"{baseline / service:.1f}×."
    )


def _cost(row: dict[str, Any] | None, rate: bool) -> str:
    if row is None:
        return "—"
    text = f"{row['cpu_ms_per_call']:.2f} ms"
    return f"{text} = {row['calls_per_cpu_s']:,.0f}/s" if rate else text


def judge_cost_table(runs: list[Run], loop: str = "asyncio") -> str:
    """CPU per judge call of the service's JudgeClient and of bare httpx and aiohttp POSTs, per run."""
    lines = [
        "| run | JudgeClient | httpx, bare POST | aiohttp, bare POST |",
        "| --- | --- | --- | --- |",
    ]
    for label, results in runs:
        rows = [row for row in results.get("judge_client_cost", []) if row["loop"] == loop]
        client = next((row for row in rows if row["client"].startswith(("JudgeClient", "httpx JudgeClient"))), None)
        name = " (httpx)" if client and client["client"].startswith("httpx") else ""
        httpx = next((row for row in rows if row["client"] == "httpx, bare POST"), None)
        aiohttp = next((row for row in rows if row["client"] == "aiohttp, bare POST"), None)
        lines.append(f"| {label} | **{_cost(client, True)}**{name} | {_cost(httpx, True)} | {_cost(aiohttp, False)} |")
    return "\n".join(lines)


def backends_table(runs: list[Run]) -> str:
    """Each exported backend against torch: speed in every run (the first in bold), numerics of the first run."""
    first = runs[0][1].get("backends", [])
    lines = [
        "| backend | × torch (" + ", ".join(label for label, _ in runs) + ") | max \\|Δcos\\| | flips at 0.8 (batch, "
        "corpus pairs); at the semantic floor (corpus) |",
        "| --- | --- | --- | --- |",
    ]
    for row in first:
        if row["backend"] == "torch" or "unavailable" in row:
            continue
        speeds = []
        for _, results in runs:
            match = next((r for r in results.get("backends", []) if r["backend"] == row["backend"]), None)
            speeds.append(f"{match['speedup_vs_torch']:.2f}×" if match and "unavailable" not in match else "—")
        speeds[0] = f"**{speeds[0]}**"
        lines.append(
            f"| {row['backend']} | {', '.join(speeds)} | {row['max_abs_delta_cosine']:.1e} | "
            f"{row['flips_batch']} of {row['pairs_batch']}, {row['flips_corpus']} of {row['pairs_corpus']}; "
            f"{row['flips_corpus_floor']} of {row['pairs_corpus']} |"
        )
    return "\n".join(lines)
