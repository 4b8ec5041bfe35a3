"""A small run of the benchmark harness, so it cannot rot: every figure is produced, the serial baseline
and the service agree on every score, and the table and the plot render."""

from __future__ import annotations

from medix_reward.devtools.bench import BenchConfig, plot, run_bench, table
from medix_reward.devtools.common import grpo_items


def test_grpo_items_shape():
    items = grpo_items(prompts=5, group=8, duplicate_share=0.3, seed=1)
    assert len(items) == 40 and [i["group_id"] for i in items[:9]] == [0] * 8 + [1]
    assert any("<thinking>" not in i["response"] for i in items)  # some broken formats
    assert any("?" in i["response"] for i in items)  # some invalid answers
    assert items == grpo_items(prompts=5, group=8, duplicate_share=0.3, seed=1)  # reproducible


def test_harness_smoke(tmp_path):
    config = BenchConfig(prompts=3, group=4, latency_ms=5, repeats=2, baseline_repeats=1, sweep_sizes=[8, 16],
                         sweep_latencies_ms=[5.0], overload_pairs=16, fairness_items=8)  # fmt: skip
    results = run_bench(config, log=lambda line: None)
    assert results["items"] == 12 and results["score_mismatches_vs_baseline"] == 0
    assert results["judge"]["calls_p50"] <= results["baseline"]["judge_calls"]
    assert results["speedup"] > 0 and results["embed"]["ratio"] > 0 and results["overhead_warm_s"] > 0
    assert len(results["sweep"]) == 2
    assert [row["adaptive"] for row in results["overload"]] == [False, True]
    assert results["fairness"]["small_requests"] >= 1
    assert "speed-up, service / baseline" in table(results)
    plot(results, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
