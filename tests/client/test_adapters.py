"""Each trainer adapter called exactly as its trainer calls it, against the real service on loopback
(scripted judge, real MiniLM), and checked against `/reward` for the same items."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from medix_reward_tools.common import grpo_batch
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import Fault

from medix_reward_client import RewardClient
from medix_reward_client.adapters import clients, easyr1, trl, verl
from medix_reward_client.offline import score_file
from medix_reward_client.scores import FALLBACKS, RewardUnavailable
from tests.helpers import CharEncoder

COMPONENT_KEYS = ("format", "modality", "accuracy_llm", "accuracy_embed")


@pytest.fixture(autouse=True)
def fresh_clients():
    """The adapters' shared clients (one per service URL) are closed after each test."""
    yield
    clients.reset()


@pytest.fixture
def reward_calls(service):
    """Counts the adapters' calls to the service, through the adapters' own shared client."""
    calls: list[httpx.Request] = []
    http = httpx.Client(timeout=60, event_hooks={"request": [calls.append]})
    clients.register(service.url, RewardClient(service.url, http_client=http))
    return calls


def reference(service: LiveServer, items: list[dict]) -> list[dict]:
    return httpx.post(f"{service.url}/reward", json={"items": items}, timeout=60).json()["results"]


def expected_floats(result: dict) -> dict[str, float]:
    return {"overall": result["overall"], **{k: result["scores"][k] for k in COMPONENT_KEYS}}


def test_easyr1_batch_reward_function(service):
    items = grpo_batch(prompts=3, group=4)
    reward_inputs = [
        {"response": i["response"], "response_length": len(i["response"]), "ground_truth": i["ground_truth"]}
        for i in items
    ]
    assert easyr1.REWARD_TYPE == "batch"
    scores = easyr1.compute_score(reward_inputs, url=service.url)  # EasyR1: fn(inputs, **reward_function_kwargs)
    assert scores == [expected_floats(r) for r in reference(service, items)]
    assert all(isinstance(v, float) for s in scores for v in s.values())


ONE_FAILS = [f"<X_RAY><thinking>r</thinking><answer>{answer}</answer>" for answer in ("Odd finding", "Big mass")]


def test_easyr1_failure_raises_unless_a_fallback_is_set(service, judge):
    inputs = [{"response": r, "response_length": len(r), "ground_truth": "<X_RAY> Mass"} for r in ONE_FAILS]
    judge.failing_answers["Odd finding"] = Fault(status=400)
    with pytest.raises(RewardUnavailable, match="judge_rejected_input"):
        easyr1.compute_score(inputs, url=service.url)
    before = sum(FALLBACKS.values())
    scores = easyr1.compute_score(inputs, url=service.url, fallback=0.0)
    assert scores[0]["overall"] == 0.0 and scores[0]["accuracy_llm"] == 0.0
    assert scores[1]["accuracy_llm"] == 1.0  # the other item keeps its real score
    assert sum(FALLBACKS.values()) == before + 1


def test_verl_single_async_and_batch_forms(service):
    items = grpo_batch(prompts=2, group=3)
    expected = [expected_floats(r) for r in reference(service, items)]
    as_verl = [{"score": e["overall"], **{k: e[k] for k in COMPONENT_KEYS}} for e in expected]
    # verl's reward loop passes these keywords, and more (reward_router_address, reward_model_tokenizer).
    single = [
        verl.compute_score(data_source="medix", solution_str=i["response"], ground_truth=i["ground_truth"],
                           extra_info={"index": n}, reward_router_address=None, url=service.url)
        for n, i in enumerate(items)
    ]  # fmt: skip
    assert single == as_verl

    async def many():
        return await asyncio.gather(*(
            verl.compute_score_async(data_source="medix", solution_str=i["response"],
                                     ground_truth=i["ground_truth"], extra_info=None, url=service.url)
            for i in items
        ))  # fmt: skip

    assert asyncio.run(many()) == as_verl
    batch = verl.compute_score_batch(
        data_sources=["medix"] * len(items), solution_strs=[i["response"] for i in items],
        ground_truths=[i["ground_truth"] for i in items], extra_infos=[None] * len(items), url=service.url,
    )  # fmt: skip
    assert batch == as_verl


def test_trl_reward_funcs_share_one_call(service, reward_calls):
    items = grpo_batch(prompts=2, group=4)
    prompts = [[{"role": "user", "content": "What does the image show?"}] for _ in items]
    completions = [[{"role": "assistant", "content": i["response"]}] for i in items]  # conversational form
    columns = {"ground_truth": [i["ground_truth"] for i in items], "trainer_state": object()}
    funcs = trl.reward_funcs(service.url)
    assert [f.__name__ for f in funcs] == ["medix_overall", "medix_format", "medix_modality",
                                          "medix_accuracy_llm", "medix_accuracy_embed"]  # fmt: skip
    values = [f(prompts=prompts, completions=completions, **columns) for f in funcs]
    assert len(reward_calls) == 1
    expected = reference(service, items)
    assert values[0] == [r["overall"] for r in expected]
    for name, column in zip(COMPONENT_KEYS, values[1:], strict=True):
        assert column == [r["scores"][name] for r in expected]
    assert trl.REWARD_WEIGHTS == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_trl_async_funcs_run_together_and_failures_are_none(service, judge):
    completions, truths = ONE_FAILS, ["<X_RAY> Mass", "<X_RAY> Mass"]
    funcs = trl.reward_funcs(service.url, use_async=True)
    judge.failing_answers["Odd finding"] = Fault(status=400)

    async def all_funcs():
        return await asyncio.gather(
            *(f(prompts=["p", "p"], completions=completions, ground_truth=truths) for f in funcs)
        )

    values = asyncio.run(all_funcs())
    assert len(judge.calls) == 2  # the five functions shared one service call: one judge call per pair
    assert values[0][0] is None and values[3] == [None, 1.0]  # None: TRL leaves it out of the baseline
    assert values[1] == [None, 1.0] and values[4][0] is None  # every function: TRL drops the row


def test_openrlhf_endpoint_one_sample_per_call_many_at_once(service):
    items = grpo_batch(prompts=4, group=8)
    expected = reference(service, [{**i, "id": None, "group_id": None} for i in items])
    prompt = "<|im_start|>user\nWhat is shown?<|im_end|>\n<|im_start|>assistant\n"

    def one(item: dict) -> dict:
        body = {"query": [prompt + item["response"]], "prompts": [prompt], "labels": [item["ground_truth"]]}
        reply = httpx.post(f"{service.url}/openrlhf/get_reward", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        return reply.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(one, items))
    assert [r["rewards"][0] for r in replies] == [r["overall"] for r in expected]
    assert [r["scores"][0] for r in replies] == [r["overall"] for r in expected]
    assert [r["extra_logs"]["accuracy_llm"][0] for r in replies] == [r["scores"]["accuracy_llm"] for r in expected]


@pytest.mark.parametrize("end", ["<|im_end|>", "<|eot_id|>\n", "</s>", "<|im_end|><|endoftext|>"])
def test_openrlhf_query_decoded_with_special_tokens(service, end):
    """OpenRLHF decodes prompt + response with special tokens kept: the end-of-turn token after the answer is the
    tokenizer's, and must not cost the format score (tests/trainers/test_openrlhf.py sees it from OpenRLHF)."""
    prompt, response = "<|im_start|>user\nWhat?<|im_end|>\n<|im_start|>assistant\n", ONE_FAILS[1]
    body = {"query": [prompt + response + end], "prompts": [prompt], "labels": ["<X_RAY> Mass"]}
    reply = httpx.post(f"{service.url}/openrlhf/get_reward", json=body, timeout=30).json()
    direct = httpx.post(
        f"{service.url}/reward", json={"items": [{"response": response, "ground_truth": "<X_RAY> Mass"}]}
    )
    assert reply["extra_logs"]["format"] == [1.0]
    assert reply["rewards"] == [direct.json()["results"][0]["overall"]]


def test_openrlhf_batches_across_calls(live_service):
    encoder = CharEncoder()
    service = live_service(embedder={"max_wait_ms": 50}, encoder=encoder)  # wide enough for concurrent calls to meet
    start = threading.Barrier(12)

    def one(n: int) -> int:
        body = {"query": [f"<answer>Finding {n}</answer>"], "labels": ["<X_RAY> Mass"]}
        start.wait()
        return httpx.post(f"{service.url}/openrlhf/get_reward", json=body, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert set(pool.map(one, range(12))) == {200}
    assert max(len(batch) for batch in encoder.batches) > 2  # texts of separate calls shared an encode


def test_slime_endpoint(service):
    item = grpo_batch(prompts=1, group=2)[1]
    expected = expected_floats(reference(service, [item])[0])
    reply = httpx.post(f"{service.url}/slime/reward", timeout=60,
                       json={"prompt": "What is shown?", "response": item["response"], "label": item["ground_truth"],
                             "metadata": {"ignored": True}})  # fmt: skip
    assert reply.status_code == 200
    assert reply.json() == {"reward": expected.pop("overall"), **expected}


@pytest.mark.parametrize(
    ("fault", "fallback", "status", "code"),
    [(400, None, 422, "judge_rejected_input"), (500, None, 502, "unscored"), (400, -1.0, 200, None)],
)
def test_float_protocols_fail_or_fall_back(live_service, judge, fault, fallback, status, code):
    """An item the judge refuses for good (400: its input) is a 422, which no client retries; one it failed
    on (500) a 502 `unscored`, which a trainer may retry; with a fallback, the fallback."""
    service = live_service(adapters={"fallback": fallback})
    judge.failing_answers["Odd finding"] = Fault(status=fault)
    body = {"query": ONE_FAILS, "labels": ["<X_RAY> Mass"] * 2}
    reply = httpx.post(f"{service.url}/openrlhf/get_reward", json=body, timeout=60)
    assert reply.status_code == status
    if code is not None:
        assert reply.json()["error"]["code"] == code
    else:
        assert reply.json()["rewards"][0] == -1.0


def test_offline_scoring_is_resumable(service, tmp_path):
    items = grpo_batch(prompts=2, group=5)
    source, results = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(i) + "\n" for i in items))
    progress = tmp_path / "progress.txt"
    with progress.open("w") as out:
        summary = asyncio.run(score_file(source, results, url=service.url, chunk_size=3, progress=out))
    assert (summary.total, summary.skipped, summary.scored) == (10, 0, 10)
    assert "10/10 items" in progress.read_text()
    lines = results.read_text().splitlines()
    assert sorted(json.loads(line)["line"] for line in lines) == list(range(1, 11))
    results.write_text("\n".join(lines[:6]) + "\n" + lines[6][:20])  # interrupted mid-line
    with progress.open("w") as out:
        again = asyncio.run(score_file(source, results, url=service.url, chunk_size=3, progress=out))
    assert (again.skipped, again.scored) == (6, 4)
    assert "overall" in again.table() and "failures: none" in again.table()


def test_fallback_fills_only_what_failed():
    from medix_reward_client.schema import ItemResult
    from medix_reward_client.scores import float_scores

    result = ItemResult.model_validate({
        "id": 7, "overall": None,
        "scores": {"format": 1.0, "modality": None, "accuracy_llm": None, "accuracy_embed": 0.0},
        "details": {"predicted_answer": "a", "true_answer": "b", "predicted_modality": None, "true_modality": None,
                    "shortcut": None},
        "errors": {"accuracy_llm": {"code": "judge_timeout", "message": "slow"}},
    })  # fmt: skip
    with pytest.raises(RewardUnavailable, match="judge_timeout"):
        float_scores(result, None)
    # modality was not computed (no error): it is left out, not given the fallback
    assert float_scores(result, -1.0) == {"overall": -1.0, "format": 1.0, "accuracy_llm": -1.0, "accuracy_embed": 0.0}
