"""TRL GRPO whose rewards come from a running medix-reward service.

    make judge                                   # prepares the packaged SmolLM2-135M policy (once)
    make run                                     # or any running service; its URL below
    .venv-trl/bin/python examples/trl_grpo.py --url http://127.0.0.1:8080 --steps 2

The policy is the packaged SmolLM2-135M folder that `make judge` prepares, trained on the CPU; any model by
`--model` (a folder or a hub name), on a GPU when there is one. The data is a JSON-lines file of
{"prompt": "...", "ground_truth": "<TAG> answer"} by `--data`; without it, two demo prompts. Each step's
metrics, TRL's own logs (`reward`, `rewards/medix_<name>/mean`, …), are printed as one JSON line. An item the
service could not score is None from every reward function, so TRL leaves it out of the group baseline;
`--fallback 0.0` scores it 0.0 instead (logged, counted). tests/trainers/test_trl.py runs this script.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import datasets
import torch
import transformers
import trl

from medix_reward_client.adapters.trl import REWARD_WEIGHTS, reward_funcs

PACKAGED_POLICY = Path(".cache/judge-stack/models/smollm2-135m")  # what `make judge` prepares
DEMO = [
    {"prompt": "Look at the chest X-ray and give the finding in a few words.", "ground_truth": "<X_RAY> Pneumothorax"},
    {"prompt": "Look at the CT of the wrist and give the finding in a few words.", "ground_truth": "<CT> Fracture"},
]


class PrintLogs(transformers.TrainerCallback):
    """One JSON line per logged step: TRL's own metrics."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs:
            print(json.dumps({"step": state.global_step, **logs}), flush=True)


def load_rows(path: str | None) -> list[dict]:
    rows = DEMO if path is None else [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    # A chat prompt, so instruct models answer in their own template.
    return [{"prompt": [{"role": "user", "content": r["prompt"]}], "ground_truth": r["ground_truth"]} for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("MEDIX_REWARD_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--model", default=str(PACKAGED_POLICY), help="a model folder or hub name")
    parser.add_argument("--data", help='JSON lines of {"prompt", "ground_truth"}; default: two demo prompts')
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt (the GRPO group)")
    parser.add_argument("--max-completion-length", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--output-dir", help="default: a temporary folder")
    parser.add_argument("--async-rewards", action="store_true", help="coroutine reward functions")
    parser.add_argument("--fallback", type=float, help="score unscorable items with this instead of None")
    parser.add_argument("--retry-budget-s", type=float, default=600.0, help="how long to wait out the service")
    args = parser.parse_args(argv)
    if args.model == str(PACKAGED_POLICY) and not PACKAGED_POLICY.exists():
        parser.error(f"no policy at {PACKAGED_POLICY}: run `make judge` first, or pass --model")

    rows = load_rows(args.data)
    on_cpu = not torch.cuda.is_available()
    config = trl.GRPOConfig(
        output_dir=args.output_dir or tempfile.mkdtemp(prefix="trl-grpo-"),
        max_steps=args.steps,
        per_device_train_batch_size=len(rows[:2]) * args.generations,
        num_generations=args.generations,
        max_completion_length=args.max_completion_length,
        learning_rate=args.learning_rate,
        beta=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=on_cpu,
        bf16=not on_cpu,
        disable_tqdm=True,
        reward_weights=REWARD_WEIGHTS,
        model_init_kwargs={"dtype": "float32" if on_cpu else "bfloat16"},
    )
    funcs = reward_funcs(args.url, use_async=args.async_rewards, fallback=args.fallback,
                         retry_budget_s=args.retry_budget_s)  # fmt: skip
    trainer = trl.GRPOTrainer(
        model=args.model,
        reward_funcs=funcs,
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        callbacks=[PrintLogs()],
    )
    trainer.train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
