"""The SDK against httpx.MockTransport: retries, Retry-After, typed errors, chunking order, sync/async parity."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from medix_reward_client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncRewardClient,
    RewardClient,
)
from medix_reward_client._core import ClientConfig, retry_delay


def fake_result(item: dict) -> dict:
    """What the service would say, derived from the item so a test can check order after chunking."""
    score = float(len(item["response"]) % 2)
    return {
        "id": item.get("id"), "group_id": item.get("group_id"), "overall": score,
        "scores": {"format": score, "modality": score, "accuracy_llm": score, "accuracy_embed": score},
        "details": {"predicted_answer": item["response"], "true_answer": "t", "predicted_modality": None,
                    "true_modality": None, "shortcut": None},
        "errors": {},
    }  # fmt: skip


def ok_reply(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)["items"]
    seconds = {"checks_s": 0.0, "judge_s": 0.1, "embed_s": 0.0, "total_s": 0.1}
    usage = {"items": len(items), "judge_pairs": len(items), "judge_calls": len(items), "judge_cache_hits": 0,
             "texts_encoded": 0, "embed_cache_hits": 0, "seconds": seconds}  # fmt: skip
    body = {"preset": "medix-r1", "results": [fake_result(i) for i in items], "groups": [], "usage": usage,
            "from_a_newer_server": True}  # fmt: skip
    return httpx.Response(200, json=body)


class Script:
    def __init__(self, *steps: httpx.Response | Exception):
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if self.steps else None
        if isinstance(step, Exception):
            raise step
        return step if step is not None else ok_reply(request)


ITEMS = [{"id": i, "group_id": i % 3, "response": "r" * i, "ground_truth": "<X_RAY> t"} for i in range(10)]


def sync_client(script: Script, **options) -> tuple[RewardClient, list[float]]:
    client = RewardClient("http://svc", transport=httpx.MockTransport(script), **options)
    sleeps: list[float] = []
    client._sleep = sleeps.append
    return client, sleeps


@pytest.mark.parametrize(
    ("status", "retry_after", "retried"),
    [(408, None, True), (429, "2", True), (502, None, True), (503, "1", True), (504, None, True),
     (400, None, False), (401, None, False), (422, None, False), (500, None, False)],
)  # fmt: skip
def test_retry_table(status, retry_after, retried):
    headers = {"Retry-After": retry_after} if retry_after else {}
    error_body = {"error": {"type": "x", "message": "scripted", "param": "items", "code": "scripted"}}
    script = Script(httpx.Response(status, json=error_body, headers=headers))
    client, sleeps = sync_client(script)
    if retried:
        assert len(client.score(ITEMS).results) == 10
        assert len(sleeps) == 1 and sleeps[0] >= float(retry_after or 0)
        assert len(script.requests) == 2
        ids = {r.headers["x-request-id"] for r in script.requests}
        assert len(ids) == 1  # one request id across the retries of a call
    else:
        with pytest.raises(APIStatusError) as raised:
            client.score(ITEMS)
        error = raised.value
        assert (error.status, error.code, error.param) == (status, "scripted", "items")
        assert error.request_id == script.requests[0].headers["x-request-id"] and sleeps == []


def test_a_500_the_service_did_not_write_is_retried():
    """Ray Serve's proxy answers a plain 500 when the replica serving the request dies: not the service's own
    error (that carries its error body and is final, above), so the call is sent again."""
    script = Script(httpx.Response(500, text="Internal Server Error"))
    client, sleeps = sync_client(script)
    assert len(client.score(ITEMS).results) == 10
    assert len(script.requests) == 2 and len(sleeps) == 1


def test_retries_are_bounded_and_backoff_grows():
    script = Script(*[httpx.Response(503)] * 10)
    client, sleeps = sync_client(script, max_retries=3)
    with pytest.raises(APIStatusError):
        client.score(ITEMS)
    assert len(script.requests) == 4 and len(sleeps) == 3
    config = ClientConfig.build("http://svc", None, 1, 3, 1, 1)
    assert [retry_delay(a, None, config, jitter=1.0) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


@pytest.mark.parametrize(
    ("error", "raised"),
    [(httpx.ConnectError("refused"), APIConnectionError), (httpx.ReadTimeout("slow"), APITimeoutError)],
)
def test_transport_errors_become_typed_errors(error, raised):
    script = Script(*[error] * 4)
    client, _ = sync_client(script, max_retries=2)
    with pytest.raises(raised) as info:
        client.score(ITEMS)
    assert len(script.requests) == 3 and info.value.request_id


def test_chunks_are_sent_and_reassembled_in_order():
    script = Script()
    client, _ = sync_client(script, chunk_size=3, max_concurrency=3)
    response = client.score(ITEMS)
    assert [r.id for r in response.results] == list(range(10))
    assert sorted(len(json.loads(r.content)["items"]) for r in script.requests) == [1, 3, 3, 3]
    assert response.usage.items == 10 and response.usage.judge_calls == 10
    assert [(g.group_id, g.size) for g in response.groups] == [(0, 4), (1, 3), (2, 3)]  # recomputed over chunks
    assert response.model_extra == {"from_a_newer_server": True}  # a newer server's fields pass through


def test_sync_and_async_give_the_same_results():
    async def slow_reply(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(random.uniform(0, 0.02))  # chunks finish out of order
        return ok_reply(request)

    async def run_async():
        async with AsyncRewardClient("http://svc", transport=httpx.MockTransport(slow_reply), chunk_size=2) as c:
            return await c.score(ITEMS, options={"embed_threshold": 0.7})

    with RewardClient("http://svc", transport=httpx.MockTransport(ok_reply), chunk_size=2) as client:
        sync = client.score(ITEMS, options={"embed_threshold": 0.7})
    assert asyncio.run(run_async()).model_dump() == sync.model_dump()


def test_base_url_and_key_from_environment(monkeypatch):
    monkeypatch.setenv("MEDIX_REWARD_URL", "http://from-env:9000/")
    monkeypatch.setenv("MEDIX_REWARD_API_KEY", "k")
    script = Script()
    client = RewardClient(transport=httpx.MockTransport(script))
    client.score(ITEMS[:1])
    assert str(script.requests[0].url) == "http://from-env:9000/reward"
    assert script.requests[0].headers["authorization"] == "Bearer k"


def test_bad_items_fail_before_sending():
    script = Script()
    client, _ = sync_client(script)
    with pytest.raises(ValueError, match="ground_truth"):
        client.score([{"response": "r"}])
    assert script.requests == []


class FakeClock:
    """Time that passes only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


def test_retry_budget_bounds_retries_in_time_and_logs_each_wait(caplog):
    caplog.set_level("WARNING", logger="medix_reward_client")
    unavailable = {"error": {"type": "judge_error", "message": "down", "param": None, "code": "judge_unreachable"}}
    script = Script(*[httpx.Response(502, json=unavailable)] * 1000)
    client = RewardClient("http://svc", transport=httpx.MockTransport(script), max_retries=None, retry_budget_s=60)
    clock = client._clock = FakeClock()
    client._sleep = clock.sleep
    with pytest.raises(APIStatusError):
        client.score(ITEMS)
    assert 60 - 8.0 < clock.now <= 60  # waited until the next wait (at most 8 s) would pass the budget
    assert len(script.requests) == len(clock.sleeps) + 1 > 10  # more than any count-bounded default
    waits = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(waits) == len(clock.sleeps)
    assert "attempt 1 failed (HTTP 502 judge_unreachable); retrying in" in waits[0]
    assert "of a 60 s retry budget" in waits[0]
    assert f"giving up after {len(script.requests)} attempts" in caplog.text


def test_async_client_shares_the_budget():
    script = Script(*[httpx.ConnectError("refused")] * 1000)

    async def run() -> FakeClock:
        client = AsyncRewardClient("http://svc", transport=httpx.MockTransport(script), max_retries=None,
                                   retry_budget_s=30)  # fmt: skip
        clock = client._clock = FakeClock()
        client._sleep = clock.async_sleep
        with pytest.raises(APIConnectionError):
            await client.score(ITEMS)
        return clock

    clock = asyncio.run(run())
    assert 30 - 8.0 < clock.now <= 30 and len(script.requests) == len(clock.sleeps) + 1


def test_both_bounds_apply_and_one_is_needed():
    script = Script(*[httpx.Response(503)] * 10)
    client = RewardClient("http://svc", transport=httpx.MockTransport(script), max_retries=2, retry_budget_s=600)
    client._sleep = lambda _: None
    with pytest.raises(APIStatusError):
        client.score(ITEMS)
    assert len(script.requests) == 3
    with pytest.raises(ValueError, match="bound"):
        RewardClient("http://svc", max_retries=None, retry_budget_s=None)


def test_adapters_pass_their_retry_settings_to_the_client():
    from medix_reward_client.adapters import clients

    clients.reset()
    try:
        default = clients.client("http://svc").config
        assert (default.max_retries, default.retry_budget_s, default.timeout) == (None, 600.0, 300.0)
        custom = clients.client("http://svc", clients.Retries(max_retries=5, retry_budget_s=1800, timeout=60)).config
        assert (custom.max_retries, custom.retry_budget_s, custom.timeout) == (5, 1800, 60)
        mine = RewardClient("http://svc")
        clients.register("http://svc", mine)
        assert clients.client("http://svc", clients.Retries(max_retries=5)) is mine  # a registered client wins
    finally:
        clients.reset()
