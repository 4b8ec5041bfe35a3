"""What an item that could not be scored becomes, per trainer, against the live service (scripted judge, real
MiniLM). Two kinds of failure: an item's judge calls fail while the judge is up (the service answers 200 with
that item null, however many items the request holds), or the judge is down (every call and probe fails: the
service answers 502, or 504 when they timed out). docs/trainers.md's table and docs/judge-health.md state these
results."""

from __future__ import annotations

import asyncio
import logging
import threading

import httpx
import pytest
from medix_reward_tools.common import free_port
from medix_reward_tools.scripted_judge import Fault, ScriptedJudge

from medix_reward_client import APIConnectionError
from medix_reward_client.adapters import clients, easyr1, trl, verl
from medix_reward_client.scores import FALLBACKS, RewardUnavailable
from tests.helpers import eventually

TRUTH = "<X_RAY> Mass"
ANSWERS = ("Odd finding", "Big mass")  # the judge says NO, then YES
RESPONSES = [f"<X_RAY><thinking>r</thinking><answer>{answer}</answer>" for answer in ANSWERS]
COMPONENTS = ("format", "modality", "accuracy_llm", "accuracy_embed")
# The service's judge: one attempt, 0.5 s each, so a hung judge call is a judge_timeout at once.
JUDGE = {"max_retries": 0, "timeout_s": 0.5, "health": {"probe_timeout_s": 0.5}}
# The adapters' client: one retry of the service's 502/504, within a few seconds.
RETRIES = {"max_retries": 1, "retry_budget_s": 5.0}
CODES = {502: "judge_http_error", 504: "judge_timeout"}


def fail(judge: ScriptedJudge, answers: tuple[str, ...]) -> None:
    """The judge fails on these answers (HTTP 500 every time) and answers everything else and its probes."""
    for answer in answers:
        judge.failing_answers[answer] = Fault(status=500)


def down(judge: ScriptedJudge, status: int = 502) -> None:
    """The judge is down: every call and probe gets HTTP 500 (the service's 502), or hangs (its 504)."""
    judge.down = Fault(status=500) if status == 502 else Fault(kind="hang")


@pytest.fixture
def service(live_service):
    yield live_service(judge=JUDGE)
    clients.reset()


def fallbacks() -> int:
    return sum(FALLBACKS.values())


# TRL: None from every function, so TRL drops the row (docs/trainers.md; TRL ≥ 1.x)


def trl_values(url: str, use_async: bool, **options) -> list[list[float | None]]:
    funcs = trl.reward_funcs(url, use_async=use_async, **RETRIES, **options)
    columns = {"prompts": ["p", "p"], "completions": RESPONSES, "ground_truth": [TRUTH, TRUTH]}
    if not use_async:
        return [f(**columns) for f in funcs]

    async def together():
        return await asyncio.gather(*(f(**columns) for f in funcs))

    return list(asyncio.run(together()))


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_trl_item_unscored_is_none_from_every_function(service, judge, use_async):
    fail(judge, ANSWERS[:1])
    overall, *components = trl_values(service.url, use_async)
    assert overall[0] is None and all(column[0] is None for column in components)
    assert overall[1] is not None and all(column[1] is not None for column in components)  # the other row is scored


@pytest.mark.parametrize(
    ("use_async", "status", "fallback"), [(False, 502, None), (True, 504, None), (False, 502, -1.0)]
)
def test_trl_request_unscored_is_none_from_every_function(service, judge, use_async, status, fallback):
    down(judge, status)
    before = fallbacks()
    values = trl_values(service.url, use_async, fallback=fallback)
    if fallback is None:
        assert values == [[None, None]] * 5
    else:  # the judge is down: nothing was measured, every value is the fallback
        assert values == [[-1.0, -1.0]] * 5 and fallbacks() == before + 2


def test_trl_fallback_replaces_only_what_failed(service, judge):
    fail(judge, ANSWERS[:1])
    before = fallbacks()
    overall, fmt, modality, llm, embed = trl_values(service.url, False, fallback=-1.0)
    assert (overall[0], llm[0]) == (-1.0, -1.0)
    assert (fmt[0], modality[0]) == (1.0, 1.0) and 0.0 <= embed[0] <= 1.0  # measured, not replaced
    assert fallbacks() == before + 1


# EasyR1 and verl: RewardUnavailable naming the cause, or the fallback (logged and counted)

FORMS = ["easyr1", "verl", "verl_async", "verl_batch"]


def call(form: str, url: str, **kwargs) -> list[dict[str, float]]:
    """Each adapter as its trainer calls it, over the two RESPONSES; values keyed as MediX-R1 names them."""
    kwargs = {"url": url, **RETRIES, **kwargs}
    if form == "easyr1":
        inputs = [{"response": r, "response_length": len(r), "ground_truth": TRUTH} for r in RESPONSES]
        return easyr1.compute_score(inputs, **kwargs)
    if form == "verl":
        out = [verl.compute_score("medix", r, TRUTH, None, **kwargs) for r in RESPONSES]
    elif form == "verl_async":

        async def both():
            return await asyncio.gather(
                *(verl.compute_score_async("medix", r, TRUTH, None, **kwargs) for r in RESPONSES)
            )

        out = asyncio.run(both())
    else:
        out = verl.compute_score_batch(["medix"] * 2, RESPONSES, [TRUTH] * 2, [None, None], **kwargs)
    return [{"overall": d.pop("score"), **d} for d in out]


@pytest.mark.parametrize("how", [fail, down], ids=["every_item_fails", "judge_down"])
@pytest.mark.parametrize("form", FORMS)
def test_request_unscored_raises_naming_the_cause(service, judge, form, how):
    how(judge, ANSWERS) if how is fail else how(judge)
    with pytest.raises(RewardUnavailable, match="judge_http_error"):
        call(form, service.url)


@pytest.mark.parametrize(("form", "status"), [(f, 502) for f in FORMS] + [("easyr1", 504), ("verl_async", 504)])
def test_request_unscored_gets_the_fallback(service, judge, form, status, caplog):
    down(judge, status)
    before, calls = fallbacks(), len(judge.calls)
    # A budget that a loaded machine's first attempt cannot use up, so the retry is always due.
    values = call(form, service.url, fallback=-1.0, retry_budget_s=60.0)
    assert values == [dict.fromkeys(("overall", *COMPONENTS), -1.0)] * 2
    assert fallbacks() == before + 2 and FALLBACKS[CODES[status]] >= 2
    assert "using fallback -1.0" in caplog.text
    assert "retrying in" in caplog.text  # the adapters' client retried the 502/504 before falling back
    # Once the judge was found down, calls failed at once: at most one call per item reached it.
    assert len(judge.calls) - calls <= 2


def test_item_unscored_without_id_is_named_by_index(service, judge):
    fail(judge, ANSWERS[1:])
    with pytest.raises(RewardUnavailable, match="item at index 1 could not be scored"):
        call("easyr1", service.url)


# OpenRLHF and slime: the service applies the same policy on their endpoints


def trainer_call(url: str, route: str) -> httpx.Response:
    if route == "openrlhf":
        body = {"query": RESPONSES, "labels": [TRUTH, TRUTH]}
        return httpx.post(f"{url}/openrlhf/get_reward", json=body, timeout=30)
    return httpx.post(f"{url}/slime/reward", json={"prompt": "p", "response": RESPONSES[0], "label": TRUTH}, timeout=30)


@pytest.mark.parametrize("status", [502, 504])
@pytest.mark.parametrize("route", ["openrlhf", "slime"])
@pytest.mark.parametrize("fallback", [None, -1.0], ids=["no_fallback", "fallback"])
def test_trainer_endpoints_when_every_judge_call_fails(live_service, judge, route, status, fallback):
    down(judge, status)
    server = live_service(judge=JUDGE, adapters={"fallback": fallback})
    reply = trainer_call(server.url, route)
    metrics = httpx.get(f"{server.url}/metrics").text
    plain = httpx.post(f"{server.url}/reward", json={"items": [{"response": RESPONSES[0], "ground_truth": TRUTH}]})
    assert plain.status_code == status  # /reward keeps the judge's own status
    counted = f'medix_reward_fallbacks_total{{route="{route}"}}'
    if fallback is None:
        assert reply.status_code == 502
        error = reply.json()["error"]
        assert (error["type"], error["code"]) == ("unscored", "unscored") and CODES[status] in error["message"]
        assert counted not in metrics
    else:
        assert reply.status_code == 200, reply.text
        items = 2 if route == "openrlhf" else 1
        expected = (
            {"rewards": [-1.0] * 2, "scores": [-1.0] * 2, "extra_logs": {c: [-1.0] * 2 for c in COMPONENTS}}
            if route == "openrlhf"
            else {"reward": -1.0, **dict.fromkeys(COMPONENTS, -1.0)}
        )
        assert reply.json() == expected
        assert f"{counted} {float(items)}" in metrics


# Retries: a budget in time, each wait logged


def test_adapters_wait_out_a_service_restart(live_service, caplog):
    caplog.set_level(logging.WARNING, logger="medix_reward_client")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(APIConnectionError):  # nothing listens, and the budget is short
        verl.compute_score("medix", RESPONSES[1], TRUTH, url=url, retry_budget_s=0.5)
    assert "giving up after" in caplog.text
    caplog.clear()
    scores: dict[str, float] = {}
    trainer = threading.Thread(
        target=lambda: scores.update(verl.compute_score("medix", RESPONSES[1], TRUTH, url=url, retry_budget_s=60))
    )
    trainer.start()
    try:
        eventually(lambda: "retrying in" in caplog.text, what="the adapter waiting for the service")
        live_service(port=port)  # the service comes back while the adapter waits
    finally:
        trainer.join()
        clients.reset()
    assert scores["accuracy_llm"] == 1.0
    waits = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert waits and all("ConnectError" in w and "of a 60 s retry budget" in w for w in waits)
