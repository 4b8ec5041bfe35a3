"""Issue 13: one item, one client or one slow judge must never take the others down.

Each case runs the real app over loopback with the scripted judge. It checks what the offending caller gets,
what innocent callers sending at the same moment get, and that the service serves the next request.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import ScriptedJudge

import medix_reward.scoring.pipeline as pipeline
from medix_reward.api.app import create_app
from medix_reward.embedding.backends import EmbedderError
from medix_reward.embedding.batcher import MicroBatcher
from tests.helpers import CharEncoder, make_settings

INNOCENT = {"response": "<X_RAY> <thinking>r</thinking> <answer>Mass</answer>", "ground_truth": "<X_RAY> Big mass"}


def send(url: str, body: dict | str, timeout: float = 60) -> httpx.Response:
    """Posts `body`; a str is sent as is, so it may hold what httpx's own JSON encoder would refuse."""
    content = body if isinstance(body, str) else json.dumps(body)  # json.dumps escapes lone surrogates
    return httpx.post(f"{url}/reward", content=content, headers={"content-type": "application/json"}, timeout=timeout)


def at_once(url: str, bodies: list[dict | str]) -> list[httpx.Response]:
    """The bodies sent at the same moment, each from its own thread; replies in the same order."""
    replies: list[httpx.Response | None] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def one(i: int) -> None:
        start.wait()
        replies[i] = send(url, bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(reply is not None for reply in replies)
    return replies  # type: ignore[return-value]


def innocents(n: int) -> list[dict | str]:
    return [{"items": [dict(INNOCENT, id=f"innocent-{i}")]} for i in range(n)]


def assert_innocent(reply: httpx.Response) -> None:
    assert reply.status_code == 200, reply.text
    (result,) = reply.json()["results"]
    assert result["overall"] is not None and result["errors"] == {}


def assert_error(reply: httpx.Response, status: int, code: str, param: str | None = None) -> dict:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code and error["param"] == param
    return error


def serves_the_next(url: str) -> None:
    assert httpx.get(f"{url}/health").status_code == 200
    assert_innocent(send(url, {"items": [INNOCENT]}))


@pytest.fixture
def service(live_service) -> LiveServer:
    return live_service(encoder=CharEncoder())


# -- 1. validation: every number finite, every field bounded, every error with a code ------------------------


@pytest.mark.parametrize("raw", ["Infinity", "-Infinity", "NaN", "1e309"])
def test_a_non_finite_weight_is_422_naming_it(service, raw):
    offending = json.dumps({"items": [INNOCENT], "options": {"weights": {"accuracy_llm": "RAW"}}})
    offending = offending.replace('"RAW"', raw)
    reply, *others = at_once(service.url, [offending, *innocents(2)])
    error = assert_error(reply, 422, "validation_error", "options.weights.accuracy_llm")
    assert "finite" in error["message"]
    for other in others:
        assert_innocent(other)
    serves_the_next(service.url)


@pytest.mark.parametrize("raw", ["1e200", "1.7e308", "1000.001"])
def test_a_huge_finite_weight_is_422_naming_it(service, raw):
    """1e200 overflowed the group statistics to a 500 (issue 24); weights are bounded by MAX_WEIGHT."""
    item = {**INNOCENT, "group_id": "g"}
    offending = json.dumps({"items": [item, item], "options": {"weights": {"content": "RAW"}}})
    reply = send(service.url, offending.replace('"RAW"', raw))
    error = assert_error(reply, 422, "validation_error", "options.weights.content")
    assert "1000" in error["message"]
    serves_the_next(service.url)


def test_the_largest_weights_and_deadline_score_finitely(service):
    weights = dict.fromkeys(["content", "format", "accuracy_llm", "accuracy_embed", "modality"], 1000.0)
    items = [{**INNOCENT, "group_id": "g"}, {**INNOCENT, "response": "<X_RAY> <answer>Other</answer>", "group_id": "g"}]
    reply = send(service.url, {"items": items, "options": {"weights": weights, "deadline_s": 1.7e308}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert all(result["overall"] is not None for result in body["results"])
    (group,) = body["groups"]
    assert group["mean"] is not None and group["std"] is not None and group["std"] < 1e7


def test_every_error_body_has_a_code(live_service):
    server = live_service(
        limits={"max_body_bytes": 4096, "max_items": 2}, auth={"keys": ["key"]}, encoder=CharEncoder()
    )
    auth = {"Authorization": "Bearer key", "Content-Type": "application/json"}
    replies = {
        401: httpx.post(f"{server.url}/reward", json={"items": [INNOCENT]}),
        400: httpx.post(f"{server.url}/reward", content=b"{not json", headers=auth),
        404: httpx.get(f"{server.url}/nowhere"),
        405: httpx.get(f"{server.url}/reward", headers=auth),
        413: httpx.post(f"{server.url}/reward", content=b"x" * 5000, headers=auth),
        422: httpx.post(f"{server.url}/reward", json={"items": [INNOCENT] * 3}, headers=auth),
    }
    for status, reply in replies.items():
        assert reply.status_code == status, reply.text
        assert reply.json()["error"]["code"], reply.text
    assert httpx.get(f"{server.url}/ready").json()["status"] == "ready"


# -- 2. poison isolation: text that cannot be encoded fails its owner only ------------------------------------


@pytest.mark.parametrize("field", ["response", "ground_truth", "answer", "modality", "prompt", "id", "group_id"])
def test_a_lone_surrogate_is_the_senders_422(service, field):
    item = dict(INNOCENT)
    if field in ("answer", "modality"):
        item = {"response": INNOCENT["response"], "answer": "Big mass", "modality": "X_RAY"}
    item[field] = item.get(field, "") + "\ud800"
    offending = json.dumps({"items": [INNOCENT, item]})
    assert "\\ud800" in offending  # valid JSON: an escaped lone surrogate
    reply, *others = at_once(service.url, [offending, *innocents(3)])
    assert_error(reply, 422, "invalid_text", f"items[1].{field}")
    for other in others:
        assert_innocent(other)
    serves_the_next(service.url)


def test_a_failed_micro_batch_is_retried_text_by_text():
    encoder = CharEncoder(poison={"poison"})

    async def go() -> list[list[np.ndarray] | BaseException]:
        batcher = MicroBatcher(encoder, max_batch_size=16, max_wait_s=0.05)
        batcher.start()
        try:
            callers = [["alpha", "poison", "beta"], ["gamma"], ["delta", "epsilon"]]
            outcomes = await asyncio.gather(*(batcher.embed(texts) for texts in callers), return_exceptions=True)
            assert batcher.alive
            outcomes.append(await batcher.embed(["after"]))
            return outcomes
        finally:
            await batcher.stop()

    poisoned, gamma, delta, after = asyncio.run(go())
    assert isinstance(poisoned, EmbedderError)
    np.testing.assert_allclose(np.stack(gamma), CharEncoder().encode(["gamma"]))
    np.testing.assert_allclose(np.stack(delta), CharEncoder().encode(["delta", "epsilon"]))
    assert len(after) == 1
    assert sorted(encoder.batches[0]) == ["alpha", "beta", "delta", "epsilon", "gamma", "poison"]  # one shared batch
    assert encoder.batches[1:7] == [[text] for text in encoder.batches[0]]  # then each text alone


def test_a_text_the_encoder_cannot_take_fails_only_its_request(live_service):
    poison = "Poisoned finding"
    encoder = CharEncoder(poison={poison})
    embedder = {"model": "fake", "max_batch_size": 64, "max_wait_ms": 300}  # callers share a batch
    server = live_service(embedder=embedder, encoder=encoder)
    offending = {"items": [dict(INNOCENT, response=f"<X_RAY> <thinking>r</thinking> <answer>{poison}</answer>")]}
    reply, *others = at_once(server.url, [offending, *innocents(3)])
    assert_error(reply, 500, "embedder_error")
    for other in others:
        assert_innocent(other)
    shared = [batch for batch in encoder.batches if poison in batch and len(batch) > 1]
    assert shared and any(text in shared[0] for text in ("Mass", "Big mass"))  # the innocents were in it
    serves_the_next(server.url)


# -- 3. item-level judge failures: the item's error, not the judge's --------------------------------------------


def long_answer(n: int, head: str = "Left-sided tension pneumothorax") -> dict[str, str]:
    answer = (head + " with mediastinal shift" * n)[: 25 * n]
    return {"response": f"<X_RAY> <thinking>r</thinking> <answer>{answer}</answer>", "ground_truth": "<X_RAY> Pneumo"}


def test_a_judge_refusing_an_items_input_fails_that_item_only(live_service, judge):
    judge.context_chars = 2000  # refuses longer prompts with 400, as vLLM does
    server = live_service(judge={"max_retries": 3}, encoder=CharEncoder())  # medix-r1 cuts nothing: the judge sees all
    alone = {"items": [long_answer(200)]}
    mixed = {"items": [long_answer(200, "Pneumothorax"), INNOCENT]}
    reply, both, *others = at_once(server.url, [alone, mixed, *innocents(2)])
    # The only judged pair was refused: 200, that item null with the reason, never 502.
    assert reply.status_code == 200, reply.text
    (result,) = reply.json()["results"]
    assert result["overall"] is None and result["scores"]["accuracy_llm"] is None
    assert result["errors"]["accuracy_llm"]["code"] == "judge_rejected_input"
    assert result["scores"]["accuracy_embed"] is not None
    refused, fine = both.json()["results"]
    assert refused["errors"]["accuracy_llm"]["code"] == "judge_rejected_input" and fine["errors"] == {}
    for other in others:
        assert_innocent(other)
    assert sum(len(call.answer) > 1000 for call in judge.calls) == 2  # each refused once, never retried
    serves_the_next(server.url)


def test_trainer_endpoints_answer_a_refused_item_422_which_no_client_retries(live_service, judge):
    """A permanent item failure is not a 502 (retried by every client until its budget ends): issue 24."""
    judge.context_chars = 2000
    server = live_service(judge={"max_answer_chars": 100_000, "max_retries": 3}, encoder=CharEncoder())
    item = long_answer(200)
    slime = {"prompt": "p", "response": item["response"], "label": item["ground_truth"]}
    openrlhf = {"query": [item["response"]], "labels": [item["ground_truth"]]}
    for route, body in (("/slime/reward", slime), ("/openrlhf/get_reward", openrlhf)):
        error = assert_error(httpx.post(f"{server.url}{route}", json=body, timeout=60), 422, "judge_rejected_input")
        assert error["type"] == "unscored" and "no fallback is set" in error["message"]
    assert sum(len(call.answer) > 1000 for call in judge.calls) == 2  # each refused once, never retried
    serves_the_next(server.url)


def test_a_refused_item_does_not_hide_a_judge_that_is_down(live_service):
    with ScriptedJudge() as gone:
        pass  # the deployment's judge does not answer
    server = live_service(make_settings([gone.url], judge={"max_retries": 0}), encoder=CharEncoder())
    reply = send(server.url, {"items": [long_answer(200), INNOCENT]})
    assert_error(reply, 502, "judge_unreachable")


def test_hardened_cuts_answers_for_the_judge_visibly_and_caches_by_what_it_saw(live_service, judge):
    judge.context_chars = 2000
    # Only the cut is under test: no screening (it refuses long answers) and no second opinions.
    defences = {"screen_answers": False, "swap_check": False, "semantic_floor": None}
    server = live_service(judge={"max_answer_chars": 200}, hardened=defences, encoder=CharEncoder())
    hardened = {"preset": "hardened"}
    first = send(server.url, {"items": [long_answer(200), INNOCENT], "options": hardened}).json()["results"]
    assert first[0]["overall"] is not None and first[0]["errors"] == {}
    assert first[0]["details"]["judge_truncated"] is True and first[0]["details"]["judge_verdict"] == "YES"
    assert first[1]["details"]["judge_truncated"] is False
    assert max(len(call.answer) for call in judge.calls) == 200
    # A different answer with the same first 200 characters is, for the judge, the same question.
    longer = send(server.url, {"items": [long_answer(300)], "options": hardened}).json()["results"][0]
    assert longer["details"]["judge_cached"] is True and longer["details"]["judge_truncated"] is True
    assert len(judge.calls) == 2
    # medix-r1 sends the reference's request: the answer whole, which this judge refuses as too long.
    whole = send(server.url, {"items": [long_answer(200)]}).json()["results"][0]
    assert whole["errors"]["accuracy_llm"]["code"] == "judge_rejected_input"
    assert len(judge.calls) == 3 and judge.calls[-1].answer == whole["details"]["predicted_answer"]
    assert whole["details"]["judge_truncated"] is None and len(judge.calls[-1].answer) > 4000


def test_normal_answers_are_not_cut_and_score_as_before(service, judge):
    result = send(service.url, {"items": [INNOCENT]}).json()["results"][0]
    assert result["details"]["judge_truncated"] is False and judge.calls[0].answer == "Mass"
    assert result["overall"] == pytest.approx(0.9 * (0.575 + 0.375 * result["scores"]["accuracy_embed"] + 0.05) + 0.1)


# -- 4. a stalled upload is closed ------------------------------------------------------------------------------


def stalled_upload(port: int, body: bytes, declared: int) -> Callable[[], bytes]:
    """Sends the headers and `body` (less than `declared`), then nothing; the returned call reads the reply
    until the server closes the connection (a server that never does fails it at the socket's 10 s)."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        f"POST /reward HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)

    def reply() -> bytes:
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        return data

    return reply


def test_a_stalled_upload_is_408_and_closed_while_others_are_served(live_service):
    server = live_service(limits={"body_timeout_s": 0.5}, encoder=CharEncoder())
    whole = json.dumps({"items": [INNOCENT]}).encode()
    read_reply = stalled_upload(server.port, whole[: len(whole) // 2], len(whole))
    for reply in at_once(server.url, innocents(3)):  # served while the upload is stalled
        assert_innocent(reply)
    data = read_reply()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "body_timeout"
    serves_the_next(server.url)


def test_a_slow_but_steady_upload_is_not_cut(live_service, judge):
    server = live_service(limits={"body_timeout_s": 0.5}, encoder=CharEncoder())
    whole = json.dumps({"items": [INNOCENT] * 4}).encode()

    def trickle() -> Iterator[bytes]:
        for start in range(0, len(whole), len(whole) // 5 + 1):
            time.sleep(0.2)  # 1 s in all, each part well within the timeout
            yield whole[start : start + len(whole) // 5 + 1]

    reply = httpx.post(f"{server.url}/reward", content=trickle(), headers={"content-type": "application/json"})
    assert reply.status_code == 200, reply.text
    # Once the body is in, waiting for the disconnect is not timed: a slow judge is not a stalled upload.
    judge.latency_s = 0.8
    reply = send(server.url, {"items": [dict(INNOCENT, ground_truth="<X_RAY> Other")]})
    assert reply.status_code == 200, reply.text


# -- 5. a large request does not stall the event loop ----------------------------------------------------------


def big_request(n: int) -> bytes:
    filler = " ".join(f"finding{j} < b >" for j in range(60))  # whitespace around tags: normalisation has work
    items = [{"response": f"<X_RAY> <thinking>{filler}</thinking> <answer>Mass {i % 50}</answer>",
              "ground_truth": "<X_RAY> Mass 1", "id": i, "group_id": i // 8} for i in range(n)]  # fmt: skip
    return json.dumps({"items": items}).encode()


def test_health_answers_while_a_large_request_is_scored(judge):
    assert pipeline.is_large(pipeline.RewardRequest.model_validate_json(big_request(65)))
    with LiveServer(create_app(make_settings([judge.url]), encoder=CharEncoder())) as server:
        body = big_request(2048)
        scored: list[httpx.Response] = []

        def score() -> None:
            headers = {"content-type": "application/json"}
            scored.append(httpx.post(f"{server.url}/reward", content=body, headers=headers, timeout=120))

        latencies = []
        with httpx.Client() as client:
            client.get(f"{server.url}/health")
            big = threading.Thread(target=score)
            big.start()
            while big.is_alive():
                started = time.perf_counter()
                assert client.get(f"{server.url}/health").status_code == 200
                latencies.append(time.perf_counter() - started)
            big.join()
        assert scored[0].status_code == 200 and len(scored[0].json()["results"]) == 2048
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        seconds = scored[0].json()["usage"]["seconds"]
        p50 = latencies[len(latencies) // 2]
        print(f"\n/health during a {len(body) / 1e6:.1f} MB request of 2048 items ({seconds['total_s']:.2f} s scored, "
              f"checks {seconds['checks_s']:.2f} s): {len(latencies)} calls, p50 {p50 * 1e3:.0f} ms, "
              f"p99 {p99 * 1e3:.0f} ms, max {latencies[-1] * 1e3:.0f} ms")  # fmt: skip
        assert len(latencies) >= 2  # /health kept answering while the big request was scored; the figure is above
