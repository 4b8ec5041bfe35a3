"""JudgeClient against scripted httpx handlers (tests.helpers.HandlerTransport): retries, backoff, replicas,
cache, parsing, concurrency bound; and its aiohttp transport against loopback servers that break."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from medix_reward_tools.scripted_judge import ScriptedJudge

from medix_reward.judge.client import JudgeClient, open_judge_transport
from medix_reward.judge.http import AiohttpTransport, JudgeTimeout, JudgeUnreachable
from medix_reward.judge.prompts import is_yes, reply_content
from medix_reward.judge.types import JudgeError, JudgeStats
from medix_reward.settings import JudgeSettings
from tests.helpers import HandlerTransport


def chat_reply(content: str, **choice: object) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}, **choice}]})


class Scripted:
    """A transport handler that serves queued responses (or raises queued errors), then YES; with a `gate`, each
    call waits at the judge until the gate is set."""

    def __init__(self, *script: httpx.Response | Exception, latency_s: float = 0.0, gate: asyncio.Event | None = None):
        self.script = list(script)
        self.requests: list[httpx.Request] = []
        self.latency_s = latency_s
        self.gate = gate
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            step = self.script.pop(0) if self.script else chat_reply("YES")
        finally:
            self.in_flight -= 1
        if isinstance(step, Exception):
            raise step
        return step


def run(handler: Scripted, coro_fn, **settings: object):
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def main():
        options = {"base_urls": ["http://judge-a/v1"], "max_retries": 3, "backoff_base_s": 0.5,
                   "backoff_max_s": 4.0, **settings}  # fmt: skip
        client = JudgeClient(JudgeSettings(**options), HandlerTransport(handler), sleep=fake_sleep, jitter=lambda: 1.0)
        return await coro_fn(client)

    return asyncio.run(main()), sleeps


# A breaker that does not open within these tests' few failures: they are about retries (test_judge_health.py).
PATIENT = {"min_failures": 100}


async def one(client: JudgeClient):
    stats = JudgeStats()
    try:
        return await client.verdict("Pneumothorax", "Tension pneumothorax", stats), stats
    except JudgeError as exc:
        return exc, stats


def test_request_shape():
    handler = Scripted()
    (verdict, stats), _ = run(handler, one)
    assert verdict.yes and stats.calls == 1
    body = json.loads(handler.requests[0].content)
    assert str(handler.requests[0].url) == "http://judge-a/v1/chat/completions"
    assert body["temperature"] == 0 and body["top_p"] == 1 and body["max_tokens"] == 4
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
    assert "Pneumothorax" in body["messages"][0]["content"] and "logprobs" not in body


@pytest.mark.parametrize(
    ("reply", "yes"), [("YES", True), ("Yes.", True), ("yes, but NO", True), ("NO", False), ("", False)]
)
def test_verdict_rule_is_the_reference_one(reply, yes):
    assert is_yes(reply) is yes


def test_retries_with_capped_exponential_backoff_then_success():
    handler = Scripted(httpx.Response(503), httpx.Response(500), httpx.Response(502))
    (verdict, stats), sleeps = run(handler, one, health=PATIENT)
    assert verdict.yes and stats.calls == 4
    assert sleeps == [0.5, 1.0, 2.0]  # base·2^attempt, jitter pinned at its maximum


def test_backoff_is_capped_and_retries_are_bounded():
    handler = Scripted(*[httpx.Response(500)] * 10)
    (error, stats), sleeps = run(handler, one, max_retries=5, backoff_max_s=1.5)
    assert isinstance(error, JudgeError) and error.code == "judge_http_error"
    assert stats.calls == 6 and sleeps == [0.5, 1.0, 1.5, 1.5, 1.5]


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("120", 10.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.5)])
def test_retry_after_is_honoured_and_capped(header, expected):
    handler = Scripted(httpx.Response(429, headers={"Retry-After": header}))
    (verdict, _), sleeps = run(handler, one, retry_after_max_s=10.0)
    assert verdict.yes and sleeps == [expected]


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "judge_rejected_input"), (413, "judge_rejected_input"), (422, "judge_rejected_input"),
     (401, "judge_http_error"), (403, "judge_http_error"), (404, "judge_http_error")],
)  # fmt: skip
def test_client_errors_are_not_retried(status, code):
    """400/413/422 are the item's input (e.g. beyond the context length); 401/403/404 the deployment's."""
    handler = Scripted(httpx.Response(status))
    (error, stats), sleeps = run(handler, one)
    assert error.code == code and str(status) in error.message
    assert stats.calls == 1 and sleeps == []


@pytest.mark.parametrize(
    ("failure", "code"),
    [(httpx.ReadTimeout("slow"), "judge_timeout"), (httpx.ConnectError("refused"), "judge_unreachable")],
)
def test_transport_failures_are_retried_then_reported(failure, code):
    handler = Scripted(*[failure] * 4)
    (error, stats), _ = run(handler, one, health=PATIENT)
    assert error.code == code and stats.calls == 4


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, text="<html>proxy</html>"),
        httpx.Response(200, json={"choices": []}),
        httpx.Response(200, json={"choices": [{"message": {"content": None}}]}),
    ],
)
def test_unparseable_replies_are_errors(reply):
    (error, stats), _ = run(Scripted(reply), one)
    assert error.code == "judge_bad_reply" and stats.calls == 1


def test_replicas_share_calls_and_a_bad_one_is_retried_on_the_next():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if request.url.host == "judge-bad" else chat_reply("NO")

    seen: list[str] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return handler(request)

    async def many(client: JudgeClient):
        stats = JudgeStats()
        verdicts = await asyncio.gather(*(client.verdict(f"a{i}", "t", stats) for i in range(6)))
        return verdicts, stats

    async def main():
        settings = JudgeSettings(base_urls=["http://judge-bad/v1", "http://judge-good/v1"], backoff_base_s=0)
        return await many(JudgeClient(settings, HandlerTransport(recording)))

    verdicts, _ = asyncio.run(main())
    assert all(not v.yes for v in verdicts)
    assert seen.count("judge-good") == 6 and seen.count("judge-bad") == 3  # first attempts alternate


def test_cache_and_in_flight_dedup():
    handler = Scripted(latency_s=0.05)

    async def twice(client: JudgeClient):
        stats = JudgeStats()
        together = await asyncio.gather(*(client.verdict("A b", "C d", stats) for _ in range(5)))
        later = await client.verdict("A b", "C d", stats)
        return together, later, stats

    (together, later, stats), _ = run(handler, twice)
    assert stats.calls == 1 and stats.cache_hits == 5
    assert [v.cached for v in together].count(False) == 1 and later.cached


def test_failures_are_not_cached():
    handler = Scripted(httpx.Response(400))

    async def twice(client: JudgeClient):
        return await one(client), await one(client)

    ((first, _), (second, _)), _ = run(handler, twice)
    assert isinstance(first, JudgeError) and second.yes


def test_concurrency_bound_holds():
    handler = Scripted(latency_s=0.02)

    async def many(client: JudgeClient):
        stats = JudgeStats()
        await asyncio.gather(*(client.verdict(f"answer {i}", "t", stats) for i in range(40)))
        return stats

    stats, _ = run(handler, many, concurrency=7)
    assert stats.calls == 40 and handler.max_in_flight == 7


def test_p_yes_counts_tokens_that_begin_yes():
    top = [
        {"token": "Y", "logprob": -1.2039728},
        {"token": " Yes", "logprob": -1.609438},
        {"token": "The", "logprob": -1.2039728},
        {"token": "No", "logprob": -2.302585},
    ]  # 0.3, 0.2, 0.3, 0.1
    reply = chat_reply("YES", logprobs={"content": [{"token": "Y", "logprob": -1.2039728, "top_logprobs": top}]})
    (verdict, _), _ = run(Scripted(reply), one, logprobs=True)
    assert verdict.p_yes == pytest.approx(0.5, abs=1e-6)


def test_logprobs_give_p_yes():
    top = [{"token": "YES", "logprob": -0.2231436}, {"token": "NO", "logprob": -1.609438}]  # 0.8, 0.2
    reply = chat_reply("YES", logprobs={"content": [{"token": "YES", "logprob": -0.2231436, "top_logprobs": top}]})
    handler = Scripted(reply)
    (verdict, _), _ = run(handler, one, logprobs=True)
    assert verdict.p_yes == pytest.approx(0.8, abs=1e-6)
    body = json.loads(handler.requests[0].content)
    assert body["logprobs"] is True and body["top_logprobs"] == 5


def test_a_waiter_is_not_failed_by_the_owner_request_going_away():
    """Two requests want the same pair; the first one's client disconnects (its task is cancelled).
    The second still gets a verdict, by making the call itself, not a made-up error."""
    handler = Scripted(gate=asyncio.Event())  # the owner's call stays at the judge until the gate opens

    async def two(client: JudgeClient):
        owner = asyncio.ensure_future(client.verdict("A b", "C d", JudgeStats()))
        while not handler.requests:
            await asyncio.sleep(0)
        waiter_stats = JudgeStats()
        waiter = asyncio.ensure_future(client.verdict("A b", "C d", waiter_stats))
        for _ in range(10):  # no I/O on the way: the waiter reaches the owner's call and waits on it
            await asyncio.sleep(0)
        assert len(handler.requests) == 1  # it shares the owner's call rather than making its own
        owner.cancel()
        await asyncio.sleep(0)
        handler.gate.set()
        return await waiter, waiter_stats

    (verdict, stats), _ = run(handler, two)
    assert verdict.yes and not verdict.cached and stats.calls == 1 and len(handler.requests) == 2


# The aiohttp transport against real loopback servers that break the way networks do.


async def _against(serve, timeout_s: float = 5.0):
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = AiohttpTransport(4)
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        return await transport.send("POST", url, body={"model": "m"}, headers={}, timeout_s=timeout_s)
    finally:
        await transport.aclose()
        server.close()


@pytest.mark.parametrize(
    "reply",
    [b"", b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"choi', b"SPEAKS NO HTTP\r\n\r\n"],
    ids=["closed before a reply", "closed mid-body", "not HTTP"],
)
def test_a_connection_broken_by_the_judge_is_unreachable(reply):
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    with pytest.raises(JudgeUnreachable):
        asyncio.run(_against(serve))


def test_a_judge_that_never_replies_is_a_timeout():
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)

    with pytest.raises(JudgeTimeout):
        asyncio.run(_against(serve, timeout_s=0.2))


def test_a_reply_keeps_its_status_headers_and_body():
    body = b'{"choices": [{"message": {"content": "NO"}}]}'

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 429 Too Many Requests\r\nRETRY-AFTER: 2\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    reply = asyncio.run(_against(serve))
    assert reply.status == 429 and reply.headers.get("retry-after") == "2" and reply_content(reply) == "NO"


def test_judge_calls_do_not_go_through_a_proxy_from_the_environment(monkeypatch):
    # docs/operations.md (judge.base_urls): judges are reached directly. A proxy variable pointing nowhere must not
    # break the call.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    body = b'{"choices": [{"message": {"content": "YES"}}]}'

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    assert reply_content(asyncio.run(_against(serve))) == "YES"


def test_readiness_probe_is_not_queued_behind_a_full_pool_of_slow_calls():
    # Every one of `concurrency` calls is in flight on a slow judge: /ready's GET /models (2 s timeout) must still
    # get a connection, or a busy pod would be taken out of service for being busy.
    with ScriptedJudge(latency_s=3.0) as judge:

        async def main() -> bool:
            settings = JudgeSettings(base_urls=[judge.url], model=judge.model, concurrency=4, adaptive=False)
            transport = open_judge_transport(settings)
            client = JudgeClient(settings, transport)
            try:
                calls = [asyncio.ensure_future(client.verdict(f"a{i}", "t", JudgeStats())) for i in range(4)]
                assert await asyncio.to_thread(judge.wait_in_flight, 4, 20.0)  # all four connections busy
                reachable = await client.reachable()
                await asyncio.gather(*calls)
                return reachable
            finally:
                await transport.aclose()

        assert asyncio.run(main())
