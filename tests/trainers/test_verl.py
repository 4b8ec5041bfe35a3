"""verl 0.9.1's own reward loop drives the verl adapter against the live service (scripted judge, real MiniLM).

The config is verl's own (`verl/trainer/config/ppo_trainer.yaml`, composed by Hydra) with the overrides of
examples/verl_grpo.sh; `load_reward_manager` loads the adapter from its path, and verl's `RewardLoopWorker`
and `NaiveRewardManager` score a batch laid out as verl's rollout lays it out (left-padded prompts,
right-padded responses, the SmolLM2 tokenizer of the packaged policy). `RewardLoopManager` runs its workers
as actors on a real local Ray cluster, as verl's trainer does, and assembles the `rm_scores` tensor and
`reward_extra_info` that the trainer reads.

No stub is needed: verl's reward path imports ray, tensordict and transformers, which install on the CPU;
only the rollout (vLLM/SGLang on a GPU) is absent, and the batch it would produce is built here.

Run with `make test-trainers` (its own venv, `.venv-verl`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.trainers.recipes import command_args, trainer

verl = trainer("verl")

import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from medix_reward_tools.scripted_judge import Fault  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.experimental.reward_loop import RewardLoopManager, RewardLoopWorker  # noqa: E402
from verl.experimental.reward_loop.reward_manager import NaiveRewardManager  # noqa: E402
from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager  # noqa: E402
from verl.utils import hf_tokenizer  # noqa: E402
from verl.utils.ray_utils import get_event_loop  # noqa: E402
from verl.workers.reward_manager import BatchRewardManager  # noqa: E402

import medix_reward_client.adapters.verl as adapter  # noqa: E402
from medix_reward_client.adapters import clients  # noqa: E402
from medix_reward_client.scores import FALLBACKS, RewardUnavailable  # noqa: E402

pytestmark = pytest.mark.trainers

TRUTHS = ["<X_RAY> Pneumothorax", "<CT> Fracture", "<X_RAY> Pneumothorax"]
RESPONSES = [
    "<X_RAY><thinking>air in the pleura</thinking><answer>Pneumothorax on the left</answer>",
    "<CT><thinking>a break</thinking><answer>A fracture</answer>",
    "<X_RAY><thinking>hmm</thinking><answer>Effusion</answer>",
]
# No answer equals its truth: each goes to the judge (an exact match would skip it).
COMPONENTS = ("format", "modality", "accuracy_llm", "accuracy_embed")
QUESTION = "Look at the image and give the finding in a few words."
FORMS = ["compute_score", "compute_score_async"]  # verl's NaiveRewardManager runs either


@pytest.fixture
def service(live_service):
    # The judge retries nothing and gives up fast, and the adapter's client retries a 502 once: a failing item
    # fails within a second, and the adapter (not the service) is what the tests watch.
    yield live_service(judge={"max_retries": 0, "timeout_s": 2.0})
    clients.reset()


def verl_config(policy: str, url: str, *extra: str):
    """verl's own trainer config with examples/verl_grpo.sh's overrides (its $VARIABLES set), then `extra`."""
    args = command_args(
        "verl_grpo.sh", "python3 -m verl.trainer.main_ppo",
        DATA="/nonexistent", MODEL=policy, ADAPTER=adapter.__file__, MEDIX_REWARD_URL=url,
    )  # fmt: skip
    retries = ["+reward.custom_reward_function.reward_kwargs.max_retries=1",
               "+reward.custom_reward_function.reward_kwargs.retry_budget_s=5"]  # fmt: skip
    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose("ppo_trainer", overrides=[*args, *retries, *extra])


def rollout_batch(tokenizer, responses: list[str], truths: list[str]) -> DataProto:
    """A batch as verl's rollout hands it to the reward loop: prompts left-padded, responses (ending in EOS)
    right-padded, one attention mask over both, and the dataset's `data_source` and `reward_model` columns."""
    prompt = tokenizer(QUESTION, add_special_tokens=False)["input_ids"]
    answers = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in responses]
    width, pad = max(map(len, answers)), tokenizer.pad_token_id or 0
    rows = len(responses)
    response_ids = torch.full((rows, width), pad, dtype=torch.long)
    mask = torch.zeros((rows, len(prompt) + width), dtype=torch.long)
    mask[:, : len(prompt)] = 1
    for i, ids in enumerate(answers):
        response_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, len(prompt) : len(prompt) + len(ids)] = 1
    prompts = torch.tensor([prompt] * rows)
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": response_ids, "attention_mask": mask,
                 "input_ids": torch.cat([prompts, response_ids], dim=1)},
        non_tensors={"data_source": ["medix"] * rows, "reward_model": [{"ground_truth": t} for t in truths],
                     "extra_info": [{} for _ in truths]},
    )  # fmt: skip


def worker_scores(config, timed: list[float] | None = None) -> list[dict]:
    """verl's RewardLoopWorker in this process, on the event loop its managers hold (as a Ray actor runs it);
    the seconds its scoring took (not its start) are appended to `timed`."""
    worker = RewardLoopWorker(config)
    assert isinstance(worker.reward_manager, NaiveRewardManager)
    batch = rollout_batch(worker.input_tokenizer, RESPONSES, TRUTHS)
    started = time.monotonic()
    try:
        return get_event_loop().run_until_complete(worker.compute_score_batch(batch))
    finally:
        if timed is not None:
            timed.append(time.monotonic() - started)


# The recipe, against verl's own config and loader


def test_recipe_loads_the_adapter_through_verls_loader(service, policy):
    config = verl_config(policy, service.url)
    assert config.reward.reward_manager.name == "naive"
    manager = load_reward_manager(config, tokenizer=None)
    assert isinstance(manager, NaiveRewardManager) and manager.is_async_reward_score  # compute_score_async
    # The older top-level keys still parse against 0.9.1's config, but its trainer reads only `reward.`:
    old_keys = [f"custom_reward_function.path={adapter.__file__}", "custom_reward_function.name=compute_score"]
    legacy = verl_config(policy, service.url, "reward.custom_reward_function.path=null", *old_keys)
    assert get_custom_reward_fn(legacy) is None  # so verl would use its default scorer, not ours
    # And the reward loop, the only reward path of 0.9.1's trainer, has no batch manager:
    with pytest.raises(ValueError, match="Unknown reward manager: batch"):
        load_reward_manager(verl_config(policy, service.url, "reward.reward_manager.name=batch"), tokenizer=None)


# Scoring and failures, on what verl's worker returns


@pytest.mark.parametrize("form", FORMS)
def test_reward_loop_worker_scores(service, policy, form):
    outputs = worker_scores(verl_config(policy, service.url, f"reward.custom_reward_function.name={form}"))
    assert len(outputs) == 3
    right, fracture, wrong = (output["reward_extra_info"] for output in outputs)
    for output, info in zip(outputs, (right, fracture, wrong), strict=True):
        assert output["reward_score"] == info["score"] and 0.0 <= info["score"] <= 1.0
        assert set(COMPONENTS) <= set(info)
    assert right["accuracy_llm"] == 1.0 and wrong["accuracy_llm"] == 0.0  # the judge's verdicts, as scored
    assert right["score"] > wrong["score"]


# One sample per call, and the judge fails on one sample's prompt (HTTP 500 every time, as vLLM can for one
# input) while it answers the others and its probes: the judge is up, so that sample is an item failure
# (200, null with its reason), which the adapter does not retry.
@pytest.mark.parametrize("form", FORMS)
def test_one_item_unscored_fails_the_batch_naming_it(service, judge, policy, form, caplog):
    judge.failing_truths["Fracture"] = Fault(status=500)
    config = verl_config(policy, service.url, f"reward.custom_reward_function.name={form}")
    with pytest.raises(
        RewardUnavailable, match=r"item at index 0 could not be scored \(accuracy_llm: judge_http_error"
    ):
        worker_scores(config)
    assert sum(call.truth == "Fracture" for call in judge.calls) == 1  # nobody retried it
    assert "retrying in" not in caplog.text


@pytest.mark.parametrize("form", FORMS)
def test_one_item_unscored_gets_the_fallback(live_service, judge, policy, form, caplog):
    # The service's judge retries as it does by default (3 times), with its default backoff; no verdict cache, so
    # that the step timed first, with no failure, makes the same calls.
    service = live_service(judge={"timeout_s": 2.0, "backoff_base_s": 0.2, "backoff_max_s": 5.0, "cache_size": 0})
    config = verl_config(policy, service.url, f"reward.custom_reward_function.name={form}",
                         "+reward.custom_reward_function.reward_kwargs.fallback=0.0")  # fmt: skip
    timed: list[float] = []
    worker_scores(config, timed)  # the step with every sample scored, on this machine as loaded as it is now
    judge.calls.clear()
    judge.failing_truths["Fracture"] = Fault(status=500)
    before = sum(FALLBACKS.values())
    right, fracture, wrong = (output["reward_extra_info"] for output in worker_scores(config, timed))
    # That sample's accuracy_llm and score are the fallback; what was measured (format, modality, the
    # embedding's similarity) keeps its value. The service retried its judge call; the adapter retried nothing.
    assert (fracture["score"], fracture["accuracy_llm"]) == (0.0, 0.0)
    assert (fracture["format"], fracture["modality"]) == (1.0, 1.0) and 0.0 < fracture["accuracy_embed"] <= 1.0
    # Issue 24's bound on the step (that sample once held it for the adapter's 600 s retry budget), stated as
    # counts: four judge calls, and no retry by the adapter.
    assert sum(call.truth == "Fracture" for call in judge.calls) == 4 and "retrying in" not in caplog.text
    assert right["accuracy_llm"] == 1.0 and wrong["accuracy_llm"] == 0.0  # the others are scored as usual
    assert sum(FALLBACKS.values()) == before + 1
    # Issue 24's bound: the failing sample costs the step under 5 s more than it takes with every sample scored
    # (it cost 600 s: the adapter retried its 502 for its whole budget).
    assert timed[1] < timed[0] + 5.0, timed


# The judge is down (every call and probe fails): the service answers 502, which the adapter retries within
# its budget, then raises or gives the fallback.
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("fallback", [None, -1.0], ids=["no_fallback", "fallback"])
def test_judge_down(service, judge, policy, form, fallback, caplog):
    judge.down = Fault(status=500)
    extra = [] if fallback is None else [f"+reward.custom_reward_function.reward_kwargs.fallback={fallback}"]
    config = verl_config(policy, service.url, f"reward.custom_reward_function.name={form}", *extra)
    if fallback is None:
        with pytest.raises(RewardUnavailable, match=r"none of the 1 items could be scored \(judge_http_error"):
            worker_scores(config)
        assert "retrying in" in caplog.text
        return
    for output in worker_scores(config):  # one sample per call: every call was a 502, retried, then the fallback
        assert output["reward_score"] == -1.0
        assert output["reward_extra_info"] == {"score": -1.0, **dict.fromkeys(COMPONENTS, -1.0)}


# verl's RewardLoopManager: its workers as Ray actors, the rm_scores tensor and reward_extra_info it assembles


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def manager_scores(config):
    manager = RewardLoopManager(config)
    try:
        batch = rollout_batch(hf_tokenizer(config.actor_rollout_ref.model.path), RESPONSES, TRUTHS)
        return batch, manager.compute_rm_score(batch)
    finally:
        for worker in manager.reward_loop_workers:  # named actors: the next test's manager names them again
            ray.kill(worker)


@pytest.mark.parametrize("fallback", [None, -1.0], ids=["no_fallback", "fallback"])
def test_reward_loop_manager_on_ray(ray_cluster, service, judge, policy, fallback):
    judge.failing_truths["Fracture"] = Fault(status=500)
    extra = [] if fallback is None else [f"+reward.custom_reward_function.reward_kwargs.fallback={fallback}"]
    config = verl_config(policy, service.url, "reward.num_workers=1", *extra)
    if fallback is None:  # the actor's RewardUnavailable reaches the trainer through Ray, naming the cause
        with pytest.raises(RewardUnavailable, match=r"item at index 0 could not be scored \(accuracy_llm: judge_http"):
            manager_scores(config)
        return
    batch, rewards = manager_scores(config)
    rm_scores = rewards.batch["rm_scores"]
    assert rm_scores.shape == batch.batch["responses"].shape
    prompt_length = batch.batch["prompts"].shape[1]
    last = batch.batch["attention_mask"][:, prompt_length:].sum(dim=1) - 1  # the reward sits on the last token
    per_item = rm_scores[torch.arange(3), last].tolist()
    assert rm_scores.sum(dim=1).tolist() == pytest.approx(per_item)  # and nowhere else
    info = rewards.non_tensor_batch
    assert set(rewards.meta_info["reward_extra_keys"]) == {"score", *COMPONENTS}
    assert per_item == pytest.approx(info["score"].tolist())
    assert per_item[1] == -1.0 and info["accuracy_llm"][1] == -1.0  # the judge's part is the fallback
    assert info["format"][1] == 1.0 and info["modality"][1] == 1.0  # what was measured is kept
    assert info["accuracy_llm"][0] == 1.0 and info["accuracy_llm"][2] == 0.0
    assert isinstance(info["score"], np.ndarray)


# verl's BatchRewardManager (`compute_score_batch`): 0.9.1 still ships it (verl.workers.reward_manager), but its
# trainer no longer reaches it (above); older verl's batch recipe used it. One request for the batch, so one
# item's failed judge call leaves the others scored.


@pytest.mark.parametrize("fallback", [None, -1.0], ids=["no_fallback", "fallback"])
def test_batch_reward_manager(service, judge, policy, fallback):
    judge.failing_truths["Fracture"] = Fault(status=500)
    tokenizer = hf_tokenizer(policy)
    kwargs = {"url": service.url, "max_retries": 1, "retry_budget_s": 5, "fallback": fallback}
    manager = BatchRewardManager(tokenizer, num_examine=0, compute_score=adapter.compute_score_batch, **kwargs)
    batch = rollout_batch(tokenizer, RESPONSES, TRUTHS)
    if fallback is None:
        with pytest.raises(RewardUnavailable, match=r"item at index 1 could not be scored \(accuracy_llm: judge_http"):
            manager(batch, return_dict=True)
        return
    out = manager(batch, return_dict=True)
    info, reward_tensor = out["reward_extra_info"], out["reward_tensor"]
    prompt_length = batch.batch["prompts"].shape[1]
    last = batch.batch["attention_mask"][:, prompt_length:].sum(dim=1) - 1
    assert reward_tensor[torch.arange(3), last].tolist() == pytest.approx(info["score"])
    assert (info["score"][1], info["accuracy_llm"][1]) == (-1.0, -1.0)
    assert (info["format"][1], info["modality"][1]) == (1.0, 1.0)  # measured, so kept
    assert info["accuracy_llm"][0] == 1.0 and info["accuracy_llm"][2] == 0.0
