"""What the telemetry adds to a request's scoring: `tally` + `RewardTelemetry.record` beside the metrics the
pipeline already records (`pipeline._record`), for one GRPO-shaped response, as a ratio. The same groups are
recorded on every repeat, so each repeat closes them all (`record`'s worst case).

    python -m medix_reward_tools.telemetry_cost --items 4096 --group 8
"""

from __future__ import annotations

import argparse
import time

from prometheus_client import CollectorRegistry

from medix_reward.api.metrics import Metrics
from medix_reward.api.telemetry import RewardTelemetry, tally
from medix_reward.scoring.pipeline import _record
from medix_reward.settings import TelemetrySettings
from medix_reward_client.schema import RewardItem, RewardResponse

RULES = ("verdict", "hedge", "delimiter", None, None, None, None, None)


def response(items: int, group: int) -> tuple[list[RewardItem], RewardResponse]:
    rows, results = [], []
    for i in range(items):
        rows.append(RewardItem(response="r", answer="a", group_id=i // group, group_size=group))
        rule = RULES[i % len(RULES)]
        details = {"predicted_answer": "p", "true_answer": "t", "predicted_modality": None, "true_modality": None,
                   "shortcut": "rejected" if rule else None, "rejection": rule, "cosine": (i % 10) / 10,
                   "judge_verdict": None if rule else ("YES" if i % 3 else "NO")}  # fmt: skip
        scores = {"format": 1.0, "modality": 1.0, "accuracy_llm": float(i % 2), "accuracy_embed": 0.0}
        results.append({"id": i, "group_id": i // group, "overall": 0.1 + 0.5 * (i % 2), "scores": scores,
                        "details": details})  # fmt: skip
    usage = {"items": items, "judge_pairs": 0, "judge_calls": 0, "judge_cache_hits": 0, "texts_encoded": 0,
             "embed_cache_hits": 0, "seconds": {"checks_s": 0, "judge_s": 0, "embed_s": 0, "total_s": 0}}  # fmt: skip
    body = RewardResponse.model_validate({"preset": "hardened", "results": results, "usage": usage})
    return rows, body


def best_of(repeats: int, work) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=4096)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    items, body = response(args.items, args.group)
    metrics = Metrics()
    telemetry = RewardTelemetry(TelemetrySettings(), CollectorRegistry())
    existing = best_of(args.repeats, lambda: _record(metrics, body))
    counted = tally(items, body.results, "hardened", 0.8)
    counting = best_of(args.repeats, lambda: tally(items, body.results, "hardened", 0.8))
    recording = best_of(args.repeats, lambda: telemetry.record(counted))
    added = counting + recording
    print(f"{args.items} items, groups of {args.group}: metrics already recorded {existing * 1e3:.2f} ms; telemetry "
          f"adds {added * 1e3:.2f} ms ({added / existing:.2f}x), of which {recording * 1e3:.2f} ms on the event loop "
          f"(`record`; `tally` runs on a worker thread for a large request)")  # fmt: skip


if __name__ == "__main__":
    main()
