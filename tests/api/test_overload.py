"""A judge slower than the service assumed gives fewer verdicts per second, never none: the adaptive limit
on calls in flight, and a request's deadline."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from medix_reward_tools.scripted_judge import Fault, ScriptedJudge

from medix_reward.judge.adaptive import AdaptiveLimit
from tests.helpers import CharEncoder, make_settings


def test_limit_halves_once_per_overload_and_grows_on_fast_calls():
    limit = AdaptiveLimit(max_limit=64, target_latency_s=1.0, initial=16)

    async def run() -> None:
        for _ in range(16):
            await limit.acquire()
        now = time.monotonic()
        limit.release(now, overloaded=False)  # slow start: +1 per fast call at the limit
        assert limit.limit == 17
        limit.release(now, overloaded=True)
        assert limit.limit == 8.5
        limit.release(now - 5.0, overloaded=False)  # slower than the target, but sent before the cut
        assert limit.limit == 8.5
        limit.release(time.monotonic(), overloaded=True)  # sent after it: a new sign of overload
        assert limit.limit == 4.25 and limit.inflight == 12
        limit.release(time.monotonic(), overloaded=False)  # past slow start: one per window
        assert limit.limit == pytest.approx(4.25 + 1 / 4.25)

    asyncio.run(run())


def test_waiters_take_freed_slots_and_a_cancelled_waiter_passes_its_slot_on():
    async def run() -> None:
        limit = AdaptiveLimit(max_limit=1, target_latency_s=1.0, initial=1)
        await limit.acquire()
        first = asyncio.ensure_future(limit.acquire())
        second = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        assert limit.waiting == 2
        limit.release(time.monotonic(), overloaded=False)
        first.cancel()  # woken, then gone before taking the slot
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert second.done() and limit.inflight == 1

    asyncio.run(run())


def distinct(n: int) -> list[dict[str, str]]:
    return [{"response": f"<X_RAY> <thinking>r</thinking> <answer>Finding {i}</answer>",
             "ground_truth": "<X_RAY> Mass"} for i in range(n)]  # fmt: skip


@pytest.mark.parametrize("adaptive", [False, True])
def test_a_judge_slower_than_assumed_still_gives_verdicts(live_service, adaptive):
    # A judge that serves 2 calls at a time, 0.2 s each, like a batching server with a queue; a 1 s timeout
    # per attempt. 24 pairs sent at once: the last would wait 2.4 s inside the judge.
    with ScriptedJudge(latency_s=0.2, capacity=2) as judge:
        settings = make_settings([judge.url], judge={"timeout_s": 1.0, "max_retries": 3, "adaptive": adaptive})
        service = live_service(settings, encoder=CharEncoder())
        started = time.perf_counter()
        reply = httpx.post(f"{service.url}/reward", json={"items": distinct(24)}, timeout=60)
        seconds = time.perf_counter() - started
        metrics = httpx.get(f"{service.url}/metrics").text
    body = reply.json()
    judged = 0 if reply.status_code != 200 else sum(r["scores"]["accuracy_llm"] is not None for r in body["results"])
    calls = len(judge.calls)
    print(f"\nadaptive={adaptive}: HTTP {reply.status_code}, {judged}/24 judged in {seconds:.1f} s, {calls} calls")
    if adaptive:
        assert reply.status_code == 200 and judged == 24
        assert "medix_reward_judge_limit{" in metrics


def test_a_deadline_returns_what_was_judged_and_says_what_was_not(live_service, judge):
    for i in range(5, 10):  # the judge answers the first five at once and never the last five
        judge.failing_answers[f"Finding {i}"] = Fault(kind="hang")
    service = live_service(judge={"timeout_s": 60.0}, encoder=CharEncoder())
    body = {"items": distinct(10), "options": {"deadline_s": 2.0}}
    reply = httpx.post(f"{service.url}/reward", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    codes = [r["errors"].get("accuracy_llm", {}).get("code") for r in reply.json()["results"]]
    assert codes == [None] * 5 + ["judge_deadline"] * 5
    judge.reset()
    assert httpx.post(f"{service.url}/reward", json={"items": distinct(1)}, timeout=60).status_code == 200


def test_a_deadline_nothing_could_meet_is_nulls_not_an_error(service):
    body = {"items": distinct(3), "options": {"deadline_s": 1e-9}}
    reply = httpx.post(f"{service.url}/reward", json=body, timeout=60)
    assert reply.status_code == 200  # the caller's own bound, not the judge being down
    assert [r["errors"]["accuracy_llm"]["code"] for r in reply.json()["results"]] == ["judge_deadline"] * 3
