"""OpenRLHF 0.11.2's own HTTP reward client against the live service's `/openrlhf/get_reward` (scripted judge,
real MiniLM).

The flags are examples/openrlhf_grpo.sh's, parsed by OpenRLHF's own argparse; the reward client is the one its
vLLM engine actor builds from them (`SingleTurnAgentExecutor(args.reward.remote_url)`), and `execute` runs
as in a rollout: tokenize the prompt, generate, decode prompt + response, post to the reward server, and
fill the sample's `reward`, `scores` and `extra_logs`, which become the Experience's rewards and logs.

Stubs, each because the real part needs a GPU build: the vLLM engine (`ScriptedEngine` "generates" a given
response's token ids) and vLLM's SamplingParams (the two fields `execute` reads). The parser is built by
running the statements of train_ppo_ray.py's `__main__` block up to `parse_args()`, OpenRLHF's own code,
alone: importing that module needs deepspeed, flash-attn and vLLM, which OpenRLHF pins to GPU builds (which
is also why `.venv-openrlhf` installs openrlhf with --no-deps and the few packages its reward path imports).

Run with `make test-trainers` (its own venv, `.venv-openrlhf`).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests.trainers.recipes import command_args, trainer

openrlhf = trainer("openrlhf")

import transformers  # noqa: E402
from medix_reward_tools.scripted_judge import Fault  # noqa: E402
from openrlhf.utils.agent import SingleTurnAgentExecutor  # noqa: E402
from openrlhf.utils.config import hierarchize  # noqa: E402

pytestmark = pytest.mark.trainers

QUESTION = "Look at the image and give the finding in a few words."
SCORED = (
    "<X_RAY><thinking>air in the pleura</thinking><answer>Pneumothorax on the left</answer>",
    "<X_RAY> Pneumothorax",
)
UNSCORED = ("<CT><thinking>a break</thinking><answer>A fracture</answer>", "<CT> Fracture")  # the judge fails
COMPONENTS = ("format", "modality", "accuracy_llm", "accuracy_embed")
TRIES = 5  # OpenRLHF 0.11.2's `_post_request(url, data, try_max_times=5)`, 1 s apart


def openrlhf_parser() -> argparse.ArgumentParser:
    """train_ppo_ray.py's own argument parser: its standard-library imports and its `__main__` statements up to
    `args = parser.parse_args()` (its other imports need the GPU builds, and the parser does not use them)."""
    module = ast.parse((Path(openrlhf.__file__).parent / "cli" / "train_ppo_ray.py").read_text())
    statements = [node for node in module.body if isinstance(node, ast.Import | ast.ImportFrom) and _stdlib(node)]
    main = next(node for node in module.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test))
    for node in main.body:
        if isinstance(node, ast.Assign) and "parse_args" in ast.unparse(node.value):
            break
        statements.append(node)
    namespace: dict = {}
    exec(compile(ast.Module(body=statements, type_ignores=[]), "train_ppo_ray.py", "exec"), namespace)
    return namespace["parser"]


def _stdlib(node: ast.Import | ast.ImportFrom) -> bool:
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
    return all(name.split(".")[0] in sys.stdlib_module_names for name in names)


def recipe_args(url: str):
    """examples/openrlhf_grpo.sh's flags through OpenRLHF's parser, `hierarchize` and its remote_url split."""
    argv = command_args("openrlhf_grpo.sh", "python3 -m openrlhf.cli.train_ppo_ray", MODEL="policy", DATA="data.jsonl",
                        MEDIX_REWARD_URL=url)  # fmt: skip
    args = hierarchize(openrlhf_parser().parse_args(argv))
    args.reward.remote_url = args.reward.remote_url.split(",")  # as train_ppo_ray.py does before training
    return args


class ScriptedEngine:
    """Stands in for OpenRLHF's vLLM engine (a GPU build): its `generate` returns the token ids of a given
    response, ending in EOS as a finished vLLM generation does."""

    def __init__(self, tokenizer, response: str) -> None:
        self.token_ids = [*tokenizer(response, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        output = SimpleNamespace(token_ids=self.token_ids, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[output])


@pytest.fixture(scope="module")
def tokenizer(policy):
    return transformers.AutoTokenizer.from_pretrained(policy)


@pytest.fixture
def service(live_service, request):
    """The app whose `adapters.fallback` is the test's `fallback` parameter (None when it has none)."""
    judge = {"max_retries": 0, "timeout_s": 2.0}
    return live_service(judge=judge, adapters={"fallback": getattr(request, "param", None)})


@pytest.fixture
def openrlhf_log(caplog):
    """OpenRLHF's logger does not propagate: listen to it directly."""
    logger = logging.getLogger("openrlhf.utils.agent")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def rollout(args, tokenizer, response: str, label: str) -> dict:
    """One sample of a rollout as OpenRLHF's vLLM actor runs it, with the executor the recipe configures."""
    executor = SingleTurnAgentExecutor(args.reward.remote_url)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=False,
                                           add_generation_prompt=True)  # fmt: skip
    sampling = SimpleNamespace(max_tokens=64, logprobs=None)  # vLLM's SamplingParams: the fields execute reads
    engine = ScriptedEngine(tokenizer, response)
    return asyncio.run(executor.execute(prompt, label, sampling, 1024, tokenizer, engine))


def test_recipe_flags_parse_with_openrlhfs_argparse(service):
    args = recipe_args(service.url)
    assert args.reward.remote_url == [f"{service.url}/openrlhf/get_reward"]
    assert (args.data.input_key, args.data.label_key, args.algo.advantage.estimator) == (
        "prompt", "ground_truth", "group_norm")  # fmt: skip


def test_scored_sample(service, tokenizer, judge):
    output = rollout(recipe_args(service.url), tokenizer, *SCORED)
    assert output["reward"] == output["scores"] and len(output["reward"]) == 1
    reward = output["reward"][0]
    assert set(output["extra_logs"]) == set(COMPONENTS)
    assert output["extra_logs"]["accuracy_llm"] == [1.0] and output["extra_logs"]["format"] == [1.0]
    # The service saw the response alone: OpenRLHF's decoded prompt + response + EOS token, less the prompt and the
    # EOS (`<|im_end|>` for SmolLM2), so the reward is /reward's for the response as the policy wrote it.
    item = {"response": SCORED[0], "ground_truth": SCORED[1]}
    direct = httpx.post(f"{service.url}/reward", json={"items": [item]})
    assert direct.json()["results"][0]["overall"] == pytest.approx(reward)
    assert judge.calls and judge.calls[-1].truth == "Pneumothorax"


def test_unscored_sample_is_retried_then_left_without_reward(service, tokenizer, judge, openrlhf_log):
    judge.failing_truths["Fracture"] = Fault(status=500)
    output = rollout(recipe_args(service.url), tokenizer, *UNSCORED)
    assert (output["reward"], output["scores"], output["extra_logs"]) == (None, None, {})
    assert sum(call.truth == "Fracture" for call in judge.calls) == TRIES  # each 502 `unscored` was retried
    errors = [r.getMessage() for r in openrlhf_log.records if "Request error, please check" in r.getMessage()]
    assert len(errors) == TRIES and all("502" in e for e in errors)
    assert "Failed to fetch reward from remote RM" in openrlhf_log.text


@pytest.mark.parametrize("service", [0.0], indirect=True, ids=["fallback"])
def test_unscored_sample_gets_the_services_fallback(service, tokenizer, judge, openrlhf_log):
    judge.failing_truths["Fracture"] = Fault(status=500)
    output = rollout(recipe_args(service.url), tokenizer, *UNSCORED)
    assert output["reward"] == output["scores"] == [0.0]
    # The judge is up (it answers other samples and its probe), so this is the item's failure even alone in its
    # call: the judge's component is the fallback, what was measured is kept.
    logs = output["extra_logs"]
    assert set(logs) == set(COMPONENTS) and logs["accuracy_llm"] == [0.0]
    assert logs["format"] == logs["modality"] == [1.0] and 0.0 < logs["accuracy_embed"][0] <= 1.0
    assert sum(call.truth == "Fracture" for call in judge.calls) == 1  # answered at once, no retry
    assert "Request error" not in openrlhf_log.text
    metrics = httpx.get(f"{service.url}/metrics").text
    assert 'medix_reward_fallbacks_total{route="openrlhf"} 1.0' in metrics
