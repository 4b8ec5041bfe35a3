"""Judge health per replica (judge/health.py): the breaker's rule on a clock the test moves, then JudgeClient
and the live service against a scripted judge on loopback that fails one item's prompt, goes down, and comes
back. Issue 24: one item failing must not look like a judge that is down, and a judge that is down must."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import Fault, ScriptedJudge

from medix_reward.judge.client import JudgeClient, open_judge_transport
from medix_reward.judge.health import Breaker, State
from medix_reward.judge.types import JudgeError, JudgeStats
from medix_reward.settings import JudgeHealthSettings, JudgeSettings
from tests.helpers import eventually

HEALTH = JudgeHealthSettings(window_s=10, min_failures=3, failure_ratio=0.5, probe_interval_s=0.05)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the rule ------------------------------------------------------------------------------------------------


def test_failures_in_a_row_open_it():
    breaker = Breaker(HEALTH, Clock())
    breaker.failure("judge_unreachable")
    breaker.failure("judge_unreachable")
    assert breaker.state is State.CLOSED
    breaker.failure("judge_timeout")
    assert breaker.state is State.OPEN and not breaker.allows and breaker.last_failure == "judge_timeout"


def test_one_prompt_failing_again_and_again_is_one_failure():
    breaker = Breaker(HEALTH, Clock())
    for _ in range(50):  # the same item, retried, and asked again sample after sample
        breaker.failure("judge_http_error", prompt=7)
    assert breaker.state is State.CLOSED
    breaker.failure("judge_http_error", prompt=8)
    breaker.failure("judge_http_error", prompt=9)
    assert breaker.state is State.OPEN  # three different prompts failing in a row: the judge, not the items


def test_failures_interleaved_with_successes_open_it_once_they_are_half_the_calls():
    breaker = Breaker(HEALTH, Clock())
    for _ in range(10):
        breaker.success()
    for _ in range(8):  # never three in a row; at most 16 failures of 34 calls
        breaker.failure("judge_unreachable")
        breaker.failure("judge_unreachable")
        breaker.success()
    assert breaker.state is State.CLOSED
    breaker.failure("judge_unreachable")
    breaker.failure("judge_unreachable")  # 18 of 36
    assert breaker.state is State.OPEN


def test_old_failures_are_forgotten():
    clock = Clock()
    breaker = Breaker(HEALTH, clock)
    breaker.failure("judge_unreachable")
    breaker.failure("judge_unreachable")
    clock.now = 11.0  # past the window: only what follows counts
    breaker.failure("judge_unreachable")
    breaker.failure("judge_unreachable")
    assert breaker.state is State.CLOSED
    breaker.failure("judge_unreachable")
    assert breaker.state is State.OPEN


def test_half_open_closes_on_a_success_and_opens_on_a_failure():
    breaker = Breaker(HEALTH, Clock())
    breaker.trip()
    breaker.probed()
    assert breaker.state is State.HALF_OPEN and breaker.allows
    breaker.failure("judge_http_error", prompt=1)
    assert breaker.state is State.OPEN and breaker.opened == 2
    breaker.probed()
    breaker.success()
    assert breaker.state is State.CLOSED


# -- JudgeClient against a scripted judge on loopback -----------------------------------------------------------


def client_for(judge: ScriptedJudge, **settings: object) -> JudgeClient:
    options = {"base_urls": [judge.url], "model": "scripted-judge", "max_retries": 3, "backoff_base_s": 0.001,
               "backoff_max_s": 0.01, "timeout_s": 2.0, "health": HEALTH, **settings}  # fmt: skip
    judge_settings = JudgeSettings(**options)
    return JudgeClient(judge_settings, open_judge_transport(judge_settings))


async def verdict(client: JudgeClient, answer: str, truth: str = "Mass") -> bool | JudgeError:
    try:
        return (await client.verdict(answer, truth, JudgeStats())).yes
    except JudgeError as exc:
        return exc


def test_one_failing_prompt_leaves_the_judge_healthy():
    async def main(judge: ScriptedJudge) -> None:
        client = client_for(judge)
        try:
            for _ in range(5):  # a trainer asking the same failing sample again and again
                error = await verdict(client, "Bad sample")
                assert isinstance(error, JudgeError) and error.code == "judge_http_error"
                assert await verdict(client, "Mass") is True
            assert client.health.states() == {judge.url: "closed"}
            assert sum(call.answer == "Bad sample" for call in judge.calls) == 5 * 4  # retried by the service
        finally:
            await client.aclose()

    with ScriptedJudge(failing_answers={"Bad sample": Fault(status=500)}) as judge:
        asyncio.run(main(judge))


def test_a_judge_that_is_down_fails_calls_at_once_and_is_used_again_when_it_comes_back():
    async def main(judge: ScriptedJudge) -> None:
        client = client_for(judge)
        breaker = client.health.breakers[judge.url]
        try:
            judge.down = Fault(status=503)
            error = await verdict(client, "First")
            assert isinstance(error, JudgeError) and breaker.state is State.OPEN
            assert len(judge.calls) == 3  # the third failure in a row opened it; the fourth attempt was not sent
            error = await verdict(client, "Second")
            assert isinstance(error, JudgeError) and error.code == "judge_http_error"
            assert "no judge replica is healthy" in error.message and len(judge.calls) == 3  # failed at once
            changed = breaker.changed
            judge.down = None  # it comes back: the next probe (every 50 ms) half-opens the breaker
            await asyncio.wait_for(changed.wait(), timeout=30)
            assert breaker.state is State.HALF_OPEN
            assert await verdict(client, "Mass") is True
            assert breaker.state is State.CLOSED
        finally:
            await client.aclose()

    with ScriptedJudge() as judge:
        asyncio.run(main(judge))


# -- the service: 200 with the item null while the judge is healthy; 502/504 only when it is down --------------

ITEM = {"response": "<X_RAY><thinking>r</thinking><answer>Bad sample</answer>", "ground_truth": "<X_RAY> Mass"}
GOOD = {"response": "<X_RAY><thinking>r</thinking><answer>Mass</answer>", "ground_truth": "<X_RAY> Big mass"}


def breaker_state(service: LiveServer, url: str) -> float:
    metrics = httpx.get(f"{service.url}/metrics").text
    pattern = rf'medix_reward_judge_breaker_state{{replica="{re.escape(url)}"}} ([0-9.]+)'
    match = re.search(pattern, metrics)
    assert match is not None, metrics
    return float(match.group(1))


def test_one_item_request_whose_item_fails_is_200_with_the_item_null(live_service, judge):
    judge.failing_answers["Bad sample"] = Fault(status=500)
    service = live_service(judge={"max_retries": 3})
    for _ in range(3):
        reply = httpx.post(f"{service.url}/reward", json={"items": [ITEM]}, timeout=30)
        assert reply.status_code == 200, reply.text
        (result,) = reply.json()["results"]
        assert result["overall"] is None and result["errors"]["accuracy_llm"]["code"] == "judge_http_error"
    assert breaker_state(service, judge.url) == 0  # closed
    ready = httpx.get(f"{service.url}/ready")
    assert ready.status_code == 200 and ready.json()["judge_replicas"] == {judge.url: "closed"}


@pytest.mark.parametrize(("fault", "status", "code"), [(Fault(500), 502, "judge_http_error"),
                                                        (Fault(kind="hang"), 504, "judge_timeout")])  # fmt: skip
def test_a_judge_that_is_down_is_502_or_504_until_it_comes_back(live_service, judge, fault, status, code):
    health = {"probe_interval_s": 0.2, "probe_timeout_s": 0.3}
    service = live_service(judge={"max_retries": 1, "timeout_s": 0.3, "health": health})
    judge.down = fault
    for _ in range(2):  # the first finds it down; the second is refused at once
        reply = httpx.post(f"{service.url}/reward", json={"items": [GOOD]}, timeout=30)
        assert reply.status_code == status and reply.json()["error"]["code"] == code, reply.text
    calls = len(judge.calls)
    assert calls == 2 and breaker_state(service, judge.url) == 2  # open: the second sent nothing
    judge.down = None
    # Used again within the probe interval: wait (bounded) for the probe loop to half-open the breaker.
    eventually(lambda: breaker_state(service, judge.url) != 2, what="the probe half-opening the breaker")
    reply = httpx.post(f"{service.url}/reward", json={"items": [GOOD]}, timeout=30)
    assert reply.status_code == 200 and reply.json()["results"][0]["overall"] is not None
    assert breaker_state(service, judge.url) == 0
