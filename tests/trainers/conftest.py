"""Fixtures of the trainer tier, whichever trainer's venv runs it."""

from __future__ import annotations

import pytest
from medix_reward_tools.judge_stack import JudgeStack


@pytest.fixture(scope="module")
def policy() -> str:
    """The packaged SmolLM2 policy, in the folder `make judge` prepares."""
    model_dir = JudgeStack().model_dir
    if not (model_dir / "config.json").exists():
        pytest.skip(f"no policy at {model_dir}: run `make judge` first")
    return str(model_dir)
