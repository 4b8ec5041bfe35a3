"""A small run of the benchmark harness, so it cannot rot: every figure is produced, the serial baseline
and the service agree on every score, and the table and the plot render."""

from __future__ import annotations

from medix_reward_tools.bench.report import plot, table
from medix_reward_tools.bench.run import BenchConfig, run_bench
from medix_reward_tools.common import grpo_items


def test_grpo_items_shape():
    items = grpo_items(prompts=5, group=8, duplicate_share=0.3, seed=1)
    assert len(items) == 40 and [i["group_id"] for i in items[:9]] == [0] * 8 + [1]
    assert any("<thinking>" not in i["response"] for i in items)  # some broken formats
    assert any("?" in i["response"] for i in items)  # some invalid answers
    assert items == grpo_items(prompts=5, group=8, duplicate_share=0.3, seed=1)  # reproducible


def test_harness_smoke(tmp_path):
    config = BenchConfig(prompts=3, group=4, latency_ms=5, repeats=2, baseline_repeats=1, sweep_sizes=[8, 16],
                         sweep_latencies_ms=[5.0], overload_pairs=16, fairness_items=8, judge_cost_calls=50,
                         scale_sizes=[16, 32], scale_chunk=10, export_dir=str(tmp_path / "exports"))  # fmt: skip
    results = run_bench(config, log=lambda line: None)
    assert results["items"] == 12 and results["score_mismatches_vs_baseline"] == 0
    assert results["judge"]["calls_p50"] <= results["baseline"]["judge_calls"]
    assert results["speedup"] > 0 and results["embed"]["ratio"] > 0 and results["overhead_warm_s"] > 0
    assert len(results["sweep"]) == 2
    assert [row["adaptive"] for row in results["overload"]] == [False, True]
    assert results["fairness"]["small_requests"] >= 1
    assert results["service_over_direct_encode"] > 0
    # Every backend measured beside torch; the exports compute the same similarities (no flipped decision).
    assert [r["backend"] for r in results["backends"]] == ["torch", "onnx", "openvino", "onnx-int8"]
    for row in results["backends"][:3]:
        assert row["max_abs_delta_cosine"] < 1e-4 and row["flips_batch"] == row["flips_corpus"] == 0
    assert results["backends"][0]["max_abs_delta_cosine"] == 0 and results["backends"][0]["pairs_corpus"] > 100
    assert [(r["client"], r["loop"]) for r in results["judge_client_cost"]] == [
        ("JudgeClient (aiohttp)", "asyncio"), ("JudgeClient (aiohttp)", "uvloop"),
        ("httpx, bare POST", "asyncio"), ("httpx, bare POST", "uvloop"),
        ("aiohttp, bare POST", "asyncio"), ("aiohttp, bare POST", "uvloop"),
    ]  # fmt: skip
    assert all(r["cpu_ms_per_call"] > 0 for r in results["judge_client_cost"])
    # The scale rows: both ways of sending, every item scored, prompts distinct so texts grow with n.
    assert [(r["items"], r["mode"]) for r in results["scale"]] == [
        (16, "one request"), (16, "SDK, chunks of 10"), (32, "one request"), (32, "SDK, chunks of 10")
    ]  # fmt: skip
    assert results["scale"][2]["texts_encoded"] > results["scale"][0]["texts_encoded"]
    assert all(r["peak_rss_mb"] > 0 for r in results["scale"])
    rendered = table(results)
    assert "speed-up, service / baseline" in rendered and "(target ≤ 1.3×" in rendered
    assert "onnx-int8" in rendered and "calls/s on one core" in rendered and "SDK, chunks of 10" in rendered
    plot(results, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
