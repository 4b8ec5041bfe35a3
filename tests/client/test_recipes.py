"""The EasyR1 and slime command lines of examples/ (docs/trainers.md's recipes), against the live service.
Neither trainer is on PyPI, so these are shape tests: the reward settings of each command are read from the
script and used the way the trainer uses them (EasyR1 loads `PATH:NAME` from a file and calls it with a batch
and the JSON kwargs; slime posts {"prompt", "response", "label"} to --rm-url and reads --reward-key). verl,
OpenRLHF and TRL run their own code in the trainer tier (tests/trainers/)."""

from __future__ import annotations

import importlib.util
import json

import httpx

import medix_reward_client.adapters.easyr1 as easyr1
from medix_reward_client.adapters import clients
from tests.trainers.recipes import command_args

TRUTH = "<X_RAY> Mass"
RESPONSE = "<X_RAY><thinking>r</thinking><answer>Big mass</answer>"


def test_easyr1_recipe(service):
    args = command_args("easyr1_grpo.sh", "python3 -m verl.trainer.main", MODEL="m", ADAPTER=easyr1.__file__,
                        MEDIX_REWARD_URL=service.url)  # fmt: skip
    overrides = dict(arg.split("=", 1) for arg in args)
    assert overrides["worker.reward.reward_type"] == easyr1.REWARD_TYPE == "batch"
    path, name = overrides["worker.reward.reward_function"].rsplit(":", 1)
    spec = importlib.util.spec_from_file_location("custom_reward_fn", path)  # as EasyR1 loads it
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kwargs = json.loads(overrides["worker.reward.reward_function_kwargs"])
    inputs = [{"response": RESPONSE, "response_length": len(RESPONSE), "ground_truth": TRUTH}]
    try:
        (scores,) = getattr(module, name)(inputs, **kwargs)
    finally:
        clients.reset()
    assert kwargs == {"url": service.url}
    assert scores["accuracy_llm"] == 1.0 and scores["format"] == 1.0 and 0.0 < scores["overall"] <= 1.0


def test_slime_recipe(service):
    args = command_args("slime_grpo.sh", "python3 train.py", MEDIX_REWARD_URL=service.url)
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags["--rm-type"] == "remote_rm"
    body = {"prompt": "What is shown?", "response": RESPONSE, "label": TRUTH}
    reply = httpx.post(flags["--rm-url"], json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    reward = reply.json()[flags["--reward-key"]]
    assert isinstance(reward, float) and 0.0 < reward <= 1.0 and reply.json()["accuracy_llm"] == 1.0
