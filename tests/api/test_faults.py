"""The fault matrix: a scripted judge that fails in every way a real one does, behind the live service.

For each fault: what the caller gets (status, per-item errors), that retries happen and are bounded,
that no item is silently 0, and that the service stays up and serves the next request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx
import pytest
from medix_reward_tools.scripted_judge import Fault, ScriptedJudge

from tests.helpers import eventually, make_settings

RETRIES = 2


def items(n: int) -> list[dict[str, str]]:
    return [{"response": f"<X_RAY><thinking>r</thinking><answer>Big mass {i}</answer>", "ground_truth": "<X_RAY> Mass"}
            for i in range(n)]  # fmt: skip


@dataclass
class Case:
    faults: list[Fault | int | str] = field(default_factory=list)
    n: int = 1
    latency_s: float = 0.0
    timeout_s: float = 5.0
    dead_judge: bool = False
    extra_dead_replica: bool = False
    status: int = 200
    code: str | None = None  # the error code of the whole request, or of the failed items
    failed: bool = False  # 200 with every item null (the judge answers its probe: these are item failures)
    calls: int | None = None  # judge calls the service must make, retries included


CASES = {
    "refused connection": Case(dead_judge=True, status=502, code="judge_unreachable"),
    "timeouts": Case(faults=["hang"] * 5, timeout_s=0.3, status=504, code="judge_timeout", calls=RETRIES + 1),
    "slow replies": Case(latency_s=0.3, n=4, calls=4),
    "500 then recovery": Case(faults=[500, 503], calls=3),
    # One item that the judge fails on, while it answers its probe: the item is null, the request 200.
    "500 forever": Case(faults=[500] * 10, failed=True, code="judge_http_error", calls=RETRIES + 1),
    "429 with Retry-After": Case(faults=[Fault(429, retry_after="0.3")], calls=2),
    "garbage body": Case(faults=["garbage"], failed=True, code="judge_bad_reply", calls=1),
    "empty choices": Case(faults=["empty_choices"], failed=True, code="judge_bad_reply", calls=1),
    "one bad replica among several": Case(extra_dead_replica=True, n=6, calls=None),
}


def assert_no_silent_zero(results: list[dict]) -> None:
    for result in results:
        llm = result["scores"]["accuracy_llm"]
        if llm is None:
            assert result["overall"] is None and result["errors"]["accuracy_llm"]["code"].startswith("judge_")
        elif llm == 0.0:
            assert result["details"]["judge_verdict"] == "NO" or result["details"]["shortcut"] == "invalid_answer"


@pytest.mark.parametrize("name", list(CASES))
def test_fault(live_service, judge, name):
    case = CASES[name]
    judge.latency_s = case.latency_s
    with ScriptedJudge() as dead:
        pass  # a port where nothing answers: connections are refused
    urls = [dead.url] if case.dead_judge else [judge.url]
    if case.extra_dead_replica:
        urls = [dead.url, judge.url, dead.url]
    settings = make_settings(urls, judge={"max_retries": RETRIES, "timeout_s": case.timeout_s, "backoff_base_s": 0.01})
    judge.script(*case.faults)
    service = live_service(settings)
    reply = httpx.post(f"{service.url}/reward", json={"items": items(case.n)}, timeout=60)
    assert reply.status_code == case.status, reply.text
    if case.status == 200:
        body = reply.json()
        if case.failed:
            assert {r["errors"]["accuracy_llm"]["code"] for r in body["results"]} == {case.code}
        else:
            assert all(r["overall"] is not None for r in body["results"])
        assert_no_silent_zero(body["results"])
    else:
        error = reply.json()["error"]
        assert error["type"] == "judge_error" and error["code"] == case.code
    if case.calls is not None:
        assert len(judge.calls) == case.calls
    if name == "one bad replica among several":
        assert reply.json()["usage"]["judge_calls"] > case.n  # some first attempts hit the dead ones
    # The service stays up and serves the next request.
    assert httpx.get(f"{service.url}/health").status_code == 200
    judge.reset()
    following = {"items": items(2), "options": {"components": ["format", "modality", "accuracy_embed"]}}
    assert httpx.post(f"{service.url}/reward", json=following, timeout=60).status_code == 200


def test_judge_dies_mid_batch(live_service):
    judge = ScriptedJudge(latency_s=0.05, capacity=2).start()
    service = live_service(make_settings([judge.url], judge={"max_retries": 1, "concurrency": 2, "timeout_s": 2.0}))
    replies: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: replies.append(httpx.post(f"{service.url}/reward", json={"items": items(60)}, timeout=60))
    )
    request.start()
    eventually(lambda: len(judge.calls) >= 10, what="ten judge calls")  # then the judge dies mid-batch
    judge.stop()
    request.join()
    results = replies[0].json()["results"]
    failed = [r for r in results if r["overall"] is None]
    assert 0 < len(failed) < 60
    assert {r["errors"]["accuracy_llm"]["code"] for r in failed} <= {"judge_unreachable", "judge_timeout"}
    assert_no_silent_zero(results)
    assert httpx.get(f"{service.url}/health").status_code == 200
