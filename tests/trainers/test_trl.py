"""TRL's own GRPOTrainer (trl 1.16.0, CPU torch 2.13.0) trains the packaged SmolLM2-135M policy for two steps
against the live service with a scripted judge that fails on every call for one of the two prompts. The
rows the service could not score must be left out of TRL's group baseline and of its logged reward, with
advantage 0, as TRL's own logs show; the other rows train normally.

Run with `make test-trainers` (its own venv, `.venv-trl`); the policy is the folder `make judge` prepares.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from tests.trainers.recipes import EXAMPLES, trainer

trl = trainer("trl")
datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")

from medix_reward_tools.scripted_judge import Fault  # noqa: E402

from medix_reward_client.adapters import clients  # noqa: E402
from medix_reward_client.adapters.trl import REWARD_WEIGHTS, reward_funcs  # noqa: E402

pytestmark = pytest.mark.trainers

NAMES = ["medix_overall", "medix_format", "medix_modality", "medix_accuracy_llm", "medix_accuracy_embed"]
GENERATIONS = 4
SCORED, UNSCORED = "<X_RAY> Pneumothorax", "<CT> Fracture"  # the judge fails on every call for "Fracture"
QUESTION = "Look at the image and give the finding in a few words."


class Snapshots(transformers.TrainerCallback):
    """At each log, TRL's own per-row records of the step just taken: rewards per function and advantages."""

    def __init__(self) -> None:
        self.trainer: trl.GRPOTrainer | None = None
        self.steps: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        assert self.trainer is not None
        if logs and "reward" in logs:
            records = self.trainer._logs
            self.steps.append({
                "metrics": dict(logs),
                "rewards": {name: list(records["rewards"][name]) for name in NAMES},
                "advantages": list(records["advantages"]),
                "completions": list(records["completion"]),
            })  # fmt: skip


@pytest.fixture
def service(live_service, judge):
    judge.failing_truths["Fracture"] = Fault(status=400)
    yield live_service()
    clients.reset()


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_grpo_trainer_leaves_unscored_rows_out(service, judge, policy, tmp_path, use_async):
    prompt = [{"role": "user", "content": QUESTION}]
    dataset = datasets.Dataset.from_list([{"prompt": prompt, "ground_truth": truth} for truth in (SCORED, UNSCORED)])
    config = trl.GRPOConfig(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2 * GENERATIONS,
        num_generations=GENERATIONS, max_completion_length=12, learning_rate=1e-5, beta=0.0, seed=0,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, bf16=False, disable_tqdm=True,
        reward_weights=REWARD_WEIGHTS, model_init_kwargs={"dtype": "float32"},
    )  # fmt: skip
    snapshots = Snapshots()
    trainer = trl.GRPOTrainer(
        model=policy,
        reward_funcs=reward_funcs(service.url, use_async=use_async, retry_budget_s=30),
        args=config,
        train_dataset=dataset,
        callbacks=[snapshots],
    )
    snapshots.trainer = trainer
    trainer.train()

    assert len(snapshots.steps) == 2
    assert any(call.truth == "Fracture" for call in judge.calls)  # the failing prompt did reach the judge
    unscored_rows = 0
    for step in snapshots.steps:
        rewards, advantages, metrics = step["rewards"], step["advantages"], step["metrics"]
        rows = len(advantages)
        assert rows == 2 * GENERATIONS
        unscored = [i for i in range(rows) if math.isnan(rewards["medix_overall"][i])]
        unscored_rows += len(unscored)
        for i in unscored:  # every function said None for the row, so TRL took it as unscorable
            assert all(math.isnan(rewards[name][i]) for name in NAMES), (i, step["completions"][i])
            assert advantages[i] == 0.0
        scored = [rewards["medix_overall"][i] for i in range(rows) if i not in unscored]
        assert scored and all(0.0 <= r <= 1.0 for r in scored)
        # TRL's logged reward is the mean over the scored rows only: the same as the composite's own mean.
        assert metrics["reward"] == pytest.approx(sum(scored) / len(scored), abs=1e-6)
        assert metrics["reward"] == pytest.approx(metrics["rewards/medix_overall/mean"], abs=1e-6)
        for name in NAMES:
            assert f"rewards/{name}/mean" in metrics
    assert unscored_rows > 0  # the scripted failure did leave rows unscored


def test_example_script_trains_the_packaged_policy(service, policy):
    """examples/trl_grpo.py as a user runs it: from the repository root, the packaged policy by default."""
    command = [sys.executable, str(EXAMPLES / "trl_grpo.py"), "--url", service.url, "--steps", "1",
               "--generations", "2", "--max-completion-length", "8", "--retry-budget-s", "30"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=EXAMPLES.parent, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"step"')]  # PrintLogs
    assert [step["step"] for step in steps] == [1]
    metrics = steps[0]
    for name in NAMES:
        assert f"rewards/{name}/mean" in metrics
    # One of the two demo prompts is the one the judge fails on: TRL's reward is over the scored rows only.
    assert metrics["reward"] == pytest.approx(metrics["rewards/medix_overall/mean"], abs=1e-6)
