"""The client installed alone, in a fresh venv without torch, fastapi or sentence-transformers, scoring
against the real service. This is how trainers install it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from medix_reward_tools.common import grpo_batch

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib.util, sys
from medix_reward_client import RewardClient
from medix_reward_client.adapters import easyr1
heavy = [m for m in ("torch", "fastapi", "sentence_transformers", "numpy") if importlib.util.find_spec(m)]
assert not heavy, f"installed with the client: {{heavy}}"
items = {items!r}
with RewardClient({url!r}) as client:
    response = client.score(items)
print(len(response.results), response.results[0].overall)
print(easyr1.compute_score([{{"response": i["response"], "response_length": 1, "ground_truth": i["ground_truth"]}}
                            for i in items], url={url!r})[0]["overall"])
"""


def test_client_installs_alone_and_scores(tmp_path, live_service):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(ROOT)], check=True)
    items = grpo_batch(prompts=1, group=3)
    service = live_service()
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SCRIPT.format(items=items, url=service.url)],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    count, overall, easyr1_overall = out.stdout.split()
    assert count == "3" and overall == easyr1_overall
