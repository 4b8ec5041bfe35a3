"""The hacking experiment end to end, small: a warm start on 6 questions, then two GRPO steps of TRL's own
GRPOTrainer per preset against the real service (susceptible judge, packaged MiniLM) on loopback, each step
logged with the proxy and gold rewards, the labeller's shares and the service's rejection reasons. It proves
the pipeline runs (docs/hacking-in-training.md), not the result.

Run with `make test-trainers` (the .venv-trl venv); the policy is the folder `make judge` prepares.
"""

from __future__ import annotations

import json

import pytest

from tests.trainers.recipes import trainer

trainer("trl")

from medix_reward_tools.hacking import command  # noqa: E402

pytestmark = pytest.mark.trainers


def test_both_presets_train_and_log_each_step(policy, tmp_path):
    out = tmp_path / "logs"
    command.main(["--policy", policy, "--questions", "6", "--steps", "2", "--prompts", "2",
                  "--steps-per-generation", "1", "--max-completion-length", "16", "--warm-per-question", "10",
                  "--out", str(out), "--work-dir", str(tmp_path / "work"), "--no-report"])  # fmt: skip
    for preset in ("medix-r1", "hardened"):
        rows = [json.loads(line) for line in (out / f"{preset}.jsonl").read_text().splitlines()]
        assert [row["step"] for row in rows] == [1, 2]
        for row in rows:
            assert row["preset"] == preset
            assert row["completions"] == 8  # 2 prompts × 4 generations, every one labelled
            assert sum(row["shares"].values()) == pytest.approx(1.0)
            assert sum(row["families"].values()) == pytest.approx(row["shares"]["attack"])
            assert 0.0 <= row["proxy"] <= 1.0 and 0.0 <= row["gold"] <= 1.0
            # TRL's own logged reward is the service's mean: the proxy the step trained on.
            assert row["trl"]["reward"] == pytest.approx(row["proxy"], abs=1e-6)
        assert len(rows[0]["samples"]) == 8  # the first step keeps its completions
        meta = json.loads((out / f"{preset}.meta.json").read_text())
        assert meta["steps"] == 2 and meta["preset"] == preset
    # Both presets started from the one cached warm-start checkpoint.
    assert len(list((tmp_path / "work").glob("warm-*/model.safetensors"))) == 1
