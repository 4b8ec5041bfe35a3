"""`POST /reward` end to end: the real app on a loopback port, the scripted judge as a real HTTP server,
and the real MiniLM embedder."""

from __future__ import annotations

import time

import httpx
import pytest
from medix_reward_tools.common import grpo_batch
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import Fault, ScriptedJudge

from medix_reward.scoring.checks import compose
from medix_reward_client.schema import COMPONENTS, RewardResponse, Weights
from tests.helpers import CharEncoder, make_settings


def post(server: LiveServer, body: dict, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.url}/reward", json=body, timeout=timeout)


def test_grpo_batch(service, judge):
    items = grpo_batch(prompts=4, group=8)
    reply = post(service, {"items": items})
    assert reply.status_code == 200, reply.text
    body = RewardResponse.model_validate(reply.json())
    assert body.preset == "medix-r1"
    assert [r.id for r in body.results] == [item["id"] for item in items]
    for result in body.results:
        scores = result.scores.model_dump()
        assert result.errors == {}
        assert all(scores[c] in (0.0, 1.0) for c in COMPONENTS)
        assert result.overall == pytest.approx(compose(scores, Weights(), frozenset(COMPONENTS)))
        if result.details.shortcut is None:
            assert result.details.judge_verdict in ("YES", "NO") and -1 <= result.details.cosine <= 1
    pairs = {(r.details.predicted_answer, r.details.true_answer) for r in body.results if r.details.shortcut is None}
    assert body.usage.judge_pairs == len(pairs) == body.usage.judge_calls == len(judge.calls) < len(items)
    assert body.usage.texts_encoded == len({text for pair in pairs for text in pair})
    assert [(g.group_id, g.size, g.scored) for g in body.groups] == [(p, 8, 8) for p in range(4)]
    group0 = [r.overall for r in body.results if r.group_id == 0]
    assert body.groups[0].mean == pytest.approx(sum(group0) / 8)


def test_exact_and_paraphrase_through_real_embedder(service):
    items = [
        {"response": "<X_RAY> <thinking>r</thinking> <answer>Pneumothorax</answer>", "answer": "Pneumothorax",
         "modality": "X_RAY"},
        {"response": "<X_RAY> <thinking>r</thinking> <answer>pneumothorax</answer>",
         "ground_truth": "<X_RAY> Pneumothorax"},
        {"response": "<CT_SCAN> <thinking>r</thinking> <answer>Femur fracture</answer>",
         "ground_truth": "<X_RAY> Pneumothorax"},
    ]  # fmt: skip
    results = post(service, {"items": items}).json()["results"]
    assert results[0]["overall"] == 1.0 and results[0]["details"]["shortcut"] == "exact_match"
    assert results[1]["details"]["cosine"] > 0.99 and results[1]["scores"]["accuracy_embed"] == 1.0
    assert results[1]["details"]["judge_verdict"] == "YES"  # the scripted judge ignores case
    assert results[2]["details"]["cosine"] < 0.8 and results[2]["scores"]["accuracy_embed"] == 0.0
    assert results[2]["scores"]["modality"] == 0.0 and results[2]["overall"] == pytest.approx(0.1)


def test_a_failed_judge_call_is_null_with_a_reason_never_zero(service, judge):
    judge.script(400)  # the judge refuses one item's input: not retried, exactly one pair fails
    items = [
        {"response": f"<X_RAY><thinking>r</thinking><answer>Finding {i}</answer>", "ground_truth": "<X_RAY> Mass"}
        for i in range(3)
    ]
    results = post(service, {"items": items}).json()["results"]
    failed = [r for r in results if r["overall"] is None]
    assert len(failed) == 1
    assert failed[0]["scores"]["accuracy_llm"] is None
    assert failed[0]["errors"]["accuracy_llm"]["code"] == "judge_rejected_input"
    assert failed[0]["scores"]["accuracy_embed"] is not None  # the other components still scored
    assert all(r["errors"] == {} and r["overall"] is not None for r in results if r is not failed[0])


def test_retryable_judge_failures_are_retried(live_service, judge):
    # Four failures in a row open a breaker at its default (3): this test is about retries, not health.
    service = live_service(judge={"health": {"min_failures": 100}})
    judge.script(503, 500, "garbage")
    item = {"response": "<X_RAY><thinking>r</thinking><answer>Mass</answer>", "ground_truth": "<X_RAY> Big mass"}
    reply = post(service, {"items": [item]})
    # The judge answers its probe: this is one item's failure (null with the reason), not a judge that is down.
    assert (
        reply.status_code == 200 and reply.json()["results"][0]["errors"]["accuracy_llm"]["code"] == "judge_bad_reply"
    )
    assert len(judge.calls) == 3  # 503 and 500 were retried; a garbage body is final
    judge.script(503, Fault(status=429, retry_after="0"))
    item["ground_truth"] = "<X_RAY> Other mass"
    reply = post(service, {"items": [item]}).json()
    assert reply["results"][0]["overall"] is not None and reply["usage"]["judge_calls"] == 3


def test_judge_down_for_the_whole_batch_is_an_http_error(live_service, judge):
    service = live_service(judge={"max_retries": 1})
    judge.down = Fault(500)  # every call and every probe
    items = [{"response": "<X_RAY><thinking>r</thinking><answer>Mass</answer>", "ground_truth": "<X_RAY> Big"}]
    reply = post(service, {"items": items})
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "judge_http_error"
    assert httpx.get(f"{service.url}/ready").status_code == 503
    judge.reset()
    assert httpx.get(f"{service.url}/ready").status_code == 200  # its probe half-opens the breaker
    assert post(service, {"items": items}).status_code == 200  # and the service serves the next one


def test_judge_timing_out_for_the_whole_batch_is_504(live_service, judge):
    service = live_service(judge={"max_retries": 0, "timeout_s": 0.3, "health": {"probe_timeout_s": 0.3}})
    judge.down = Fault(kind="hang")
    items = [{"response": "<X_RAY><thinking>r</thinking><answer>Mass</answer>", "ground_truth": "<X_RAY> Big"}]
    reply = post(service, {"items": items})
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "judge_timeout"


def test_unreachable_judge_is_502_and_not_ready(live_service):
    with ScriptedJudge() as gone:
        url = gone.url
    service = live_service(make_settings([url], judge={"max_retries": 1}))
    items = [{"response": "<X_RAY><thinking>r</thinking><answer>Mass</answer>", "ground_truth": "<X_RAY> Big"}]
    reply = post(service, {"items": items})
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "judge_unreachable"
    assert httpx.get(f"{service.url}/ready").status_code == 503
    assert httpx.get(f"{service.url}/health").status_code == 200


def test_health_and_ready(service):
    assert httpx.get(f"{service.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{service.url}/ready").status_code == 200


def test_verdicts_are_cached_across_requests(service, judge):
    items = grpo_batch(prompts=2, group=4)
    first = post(service, {"items": items}).json()
    second = post(service, {"items": items}).json()
    assert second["usage"]["judge_calls"] == 0
    assert second["usage"]["judge_cache_hits"] == first["usage"]["judge_pairs"] > 0
    assert second["usage"]["texts_encoded"] == 0
    assert [r["overall"] for r in first["results"]] == [r["overall"] for r in second["results"]]
    assert all(r["details"]["judge_cached"] for r in second["results"] if r["details"]["shortcut"] is None)


def test_options_override_components_and_weights(service, judge):
    items = grpo_batch(prompts=1, group=4)
    body = post(service, {"items": items, "options": {"components": ["format", "modality"]}}).json()
    assert body["preset"] == "custom" and body["usage"]["judge_calls"] == 0 and len(judge.calls) == 0
    for result in body["results"]:
        assert result["scores"]["accuracy_llm"] is None and result["errors"] == {}
        expected = 0.9 * 0.05 * result["scores"]["modality"] + 0.1 * result["scores"]["format"]
        assert result["overall"] == pytest.approx(expected)
    body = post(service, {"items": items, "options": {"weights": {"format": 1.0, "content": 0.0}}}).json()
    assert [r["overall"] for r in body["results"]] == [r["scores"]["format"] for r in body["results"]]


def test_untagged_ground_truth(service):
    item = {"response": "<X_RAY><thinking>r</thinking><answer>Mass</answer>", "ground_truth": "Mass"}
    result = post(service, {"items": [item]}).json()["results"][0]
    assert result["overall"] is None and result["errors"]["modality"]["code"] == "no_true_modality"
    options = {"components": ["format", "accuracy_llm", "accuracy_embed"]}
    result = post(service, {"items": [item], "options": options}).json()["results"][0]
    assert result["overall"] == pytest.approx(0.9 * 0.95 + 0.1)


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([{"ground_truth": "<X_RAY> a"}], "items[0].response"),
        ([{"response": "r", "ground_truth": "<X_RAY> a", "answer": "a"}], "items[0]"),
        ([{"response": "r"}], "items[0]"),
        ([{"response": "r", "ground_truth": "g", "colour": "red"}], "items[0].colour"),
        ([{"response": 5, "ground_truth": "g"}], "items[0].response"),
        ([], "items"),
    ],
)
def test_validation_errors_name_the_field(service, items, param):
    reply = post(service, {"items": items})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request" and param in error["message"]


def test_embedder_failure_is_a_500_with_one_error_body(live_service):
    encoder = CharEncoder()
    service = live_service(encoder=encoder)
    encoder.fail = True
    items = [{"response": "<answer>Mass</answer>", "ground_truth": "<X_RAY> Big mass"}]
    reply = post(service, {"items": items})
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "embedder_error"
    assert "Traceback" not in reply.text and "scripted encoder failure" not in reply.text


def test_unknown_route_has_the_error_body(service):
    reply = httpx.get(f"{service.url}/nope")
    assert reply.status_code == 404 and reply.json()["error"]["type"] == "http_error"


def test_512_items_with_a_50ms_judge_overlap_their_calls(live_service, judge):
    judge.latency_s = 0.05
    service = live_service()
    settings = make_settings([judge.url])
    items = [
        {"response": f"<X_RAY><thinking>r</thinking><answer>Finding {i % 5}</answer>",
         "ground_truth": f"<X_RAY> Mass {i // 8}"}
        for i in range(512)
    ]  # fmt: skip
    started = time.perf_counter()
    body = post(service, {"items": items}).json()
    elapsed = time.perf_counter() - started
    unique = len({(f"Finding {i % 5}", f"Mass {i // 8}") for i in range(512)})
    assert body["usage"]["judge_calls"] == unique == len(judge.calls)
    assert 1 < judge.max_in_flight <= settings.judge.concurrency  # calls overlap, within the configured bound
    print(f"512 items, {unique} judge calls of 50 ms: {elapsed:.2f} s (serial judge time {unique * 0.05:.1f} s)")
    print("stage seconds:", body["usage"]["seconds"])
