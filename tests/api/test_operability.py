"""Metrics, /config, request ids, auth, limits just under and just over, cancellation, graceful shutdown."""

from __future__ import annotations

import json
import logging
import re
import threading
import time

import httpx
import pytest
from medix_reward_tools.common import grpo_batch
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import Fault, ScriptedJudge
from pydantic import SecretStr

from medix_reward.api.app import create_app
from medix_reward.api.observability import JsonFormatter, request_id_var
from medix_reward.settings import AuthSettings, LimitsSettings
from tests.helpers import CharEncoder, make_settings


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_metrics_expose_the_figures(service, judge):
    judge.failing_answers["Cholelithiasis"] = Fault(400)
    items = grpo_batch(prompts=4, group=8)
    body = httpx.post(f"{service.url}/reward", json={"items": items}, timeout=60).json()
    again = httpx.post(f"{service.url}/reward", json={"items": items}, timeout=60).json()  # cached, but failures
    text = httpx.get(f"{service.url}/metrics").text
    prefix = "medix_reward_"
    assert metric(text, f"{prefix}requests_total", route="/reward", status="200") == 2
    assert metric(text, f"{prefix}request_duration_seconds_count", route="/reward") == 2
    assert metric(text, f"{prefix}items_scored_total") == 64
    calls = body["usage"]["judge_calls"] + again["usage"]["judge_calls"]
    assert (
        metric(text, f"{prefix}judge_calls_total", outcome="ok")
        + metric(text, f"{prefix}judge_calls_total", outcome="judge_rejected_input")
        == calls
    )
    hits = body["usage"]["judge_cache_hits"] + again["usage"]["judge_cache_hits"]
    assert metric(text, f"{prefix}judge_cache_lookups_total", result="hit") == hits > 0
    assert metric(text, f"{prefix}embed_batch_size_count") >= 1
    warm_up = 1  # the text the service encodes at start-up, on the encoder's thread
    assert metric(text, f"{prefix}embed_queue_seconds_count") == body["usage"]["texts_encoded"] + warm_up
    assert metric(text, f"{prefix}embed_inference_seconds_count") >= 1
    for stage in ("checks", "judge", "embed"):
        assert metric(text, f"{prefix}stage_duration_seconds_count", stage=stage) == 2
    assert metric(text, f"{prefix}component_score_count", component="format") == 64
    unscored = sum(1 for r in body["results"] if r["errors"])
    assert unscored and metric(text, f"{prefix}unscored_components_total", component="accuracy_llm",
                               code="judge_rejected_input") == 2 * unscored  # fmt: skip
    assert f"{prefix}inflight_items 0.0" in text and f"{prefix}embed_queue_depth 0.0" in text
    assert not re.search(r"^[a-z_]*:[a-z_]*", text, re.M)  # no colons in our names


def test_config_and_the_hash_every_response_carries(judge, minilm):
    settings = make_settings([judge.url], api_key="judge-secret")
    with LiveServer(create_app(settings, encoder=minilm)) as service:
        config = httpx.get(f"{service.url}/config").json()
        reward = httpx.post(f"{service.url}/reward", json={"items": grpo_batch(1, 2)}, timeout=60).json()
    assert reward["config_hash"] == config["config_hash"] and len(config["config_hash"]) == 16
    assert reward["version"] == config["version"]
    assert config["settings"]["reward"]["embed_threshold"] == 0.8
    assert "judge-secret" not in json.dumps(config)
    changed = make_settings([judge.url])
    changed.reward.embed_threshold = 0.7
    with LiveServer(create_app(changed, encoder=minilm)) as service:
        assert httpx.get(f"{service.url}/config").json()["config_hash"] != config["config_hash"]


def test_request_id_is_accepted_echoed_and_logged(service, caplog):
    reply = httpx.get(f"{service.url}/health", headers={"X-Request-ID": "trainer-step-42"})
    assert reply.headers["x-request-id"] == "trainer-step-42"
    made = httpx.get(f"{service.url}/health", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    reply = httpx.post(f"{service.url}/reward", json={"items": []}, headers={"X-Request-ID": "r-1"})
    assert reply.status_code == 422 and reply.headers["x-request-id"] == "r-1"


def test_json_log_lines_carry_the_request_id():
    record = logging.LogRecord("medix_reward.access", logging.INFO, __file__, 1, "request", None, None)
    record.fields = {"status": 200}
    token = request_id_var.set("abc")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "abc" and line["status"] == 200 and line["message"] == "request"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "Basic a2V5LTE="}, 401),
     ({"Authorization": "Bearer key-1"}, 200), ({"Authorization": "Bearer key-2"}, 200)],
)  # fmt: skip
def test_auth(judge, minilm, headers, status):
    settings = make_settings([judge.url])
    settings.auth = AuthSettings(keys=[SecretStr("key-1"), SecretStr("key-2")])
    with LiveServer(create_app(settings, encoder=minilm)) as service:
        body = {"items": grpo_batch(1, 1)}
        reward = httpx.post(f"{service.url}/reward", json=body, headers=headers, timeout=60)
        assert reward.status_code == status
        assert httpx.get(f"{service.url}/config", headers=headers).status_code == status
        assert httpx.get(f"{service.url}/health").status_code == 200  # probes stay open
        assert httpx.get(f"{service.url}/metrics").status_code == 200
    if status == 401:
        assert reward.json()["error"]["code"] == "unauthorized" and reward.headers["www-authenticate"] == "Bearer"


def test_body_size_limit_just_under_and_just_over(judge):
    settings = make_settings([judge.url])
    item = {"response": "<answer>Mass</answer>", "ground_truth": "<X_RAY> Mass"}
    body = json.dumps({"items": [item]}).encode()
    settings.limits = LimitsSettings(max_body_bytes=len(body))
    with LiveServer(create_app(settings, encoder=CharEncoder())) as service:
        headers = {"content-type": "application/json"}
        assert httpx.post(f"{service.url}/reward", content=body, headers=headers).status_code == 200
        over = httpx.post(f"{service.url}/reward", content=body + b" ", headers=headers)
        assert over.status_code == 413 and over.json()["error"]["code"] == "body_too_large"

        def streamed():  # no Content-Length: the limit is counted as the body arrives
            yield body
            yield b" "

        chunked = httpx.post(f"{service.url}/reward", content=streamed(), headers=headers)
        assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("limit", ["max_items", "max_response_chars"])
def test_item_limits_just_under_and_just_over(judge, limit):
    settings = make_settings([judge.url])
    settings.limits = LimitsSettings(max_items=4, max_response_chars=40)
    ok = {"response": "<answer>Mass</answer>".ljust(40), "ground_truth": "<X_RAY> Mass"}
    with LiveServer(create_app(settings, encoder=CharEncoder())) as service:
        assert httpx.post(f"{service.url}/reward", json={"items": [ok] * 4}).status_code == 200
        over = [ok] * 5 if limit == "max_items" else [{**ok, "response": ok["response"] + "x"}]
        reply = httpx.post(f"{service.url}/reward", json={"items": over})
        assert reply.status_code == 422
        assert reply.json()["error"]["param"] == ("items" if limit == "max_items" else "items[0].response")


def test_concurrent_requests_limit(minilm):
    with ScriptedJudge(latency_s=0.5) as judge:
        settings = make_settings([judge.url])
        settings.limits = LimitsSettings(max_concurrent_requests=1)
        with LiveServer(create_app(settings, encoder=minilm)) as service:
            item = {"response": "<answer>Big mass</answer>", "ground_truth": "<X_RAY> Mass"}
            first: list[httpx.Response] = []
            thread = threading.Thread(
                target=lambda: first.append(httpx.post(f"{service.url}/reward", json={"items": [item]}, timeout=30))
            )
            thread.start()
            while not judge.calls:
                time.sleep(0.01)
            second = httpx.post(f"{service.url}/reward", json={"items": [item]}, timeout=30)
            thread.join()
            third = httpx.post(f"{service.url}/reward", json={"items": [item]}, timeout=30)
    assert first[0].status_code == 200 and second.status_code == 429 and third.status_code == 200


def test_a_client_that_goes_away_stops_its_judge_calls(minilm):
    with ScriptedJudge(latency_s=0.2, capacity=2) as judge:
        settings = make_settings([judge.url], concurrency=2)
        with LiveServer(create_app(settings, encoder=minilm)) as service:
            items = [{"response": f"<answer>Finding {i}</answer>", "ground_truth": "<X_RAY> Mass"} for i in range(40)]
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{service.url}/reward", json={"items": items}, timeout=0.5)
            time.sleep(1.0)
            made = len(judge.calls)
            time.sleep(1.0)
            text = httpx.get(f"{service.url}/metrics").text
    assert made < 40 and len(judge.calls) == made  # the 40 calls (4 s of judge time) were not all made
    assert metric(text, "medix_reward_requests_cancelled_total") == 1


def test_graceful_shutdown_finishes_in_flight_requests(minilm):
    with ScriptedJudge(latency_s=1.0) as judge:
        server = LiveServer(create_app(make_settings([judge.url]), encoder=minilm))
        server.__enter__()
        replies: list[httpx.Response] = []
        item = {"response": "<answer>Big mass</answer>", "ground_truth": "<X_RAY> Mass"}
        thread = threading.Thread(
            target=lambda: replies.append(httpx.post(f"{server.url}/reward", json={"items": [item]}, timeout=30))
        )
        thread.start()
        while not judge.calls:
            time.sleep(0.01)
        server.__exit__()  # asks uvicorn to stop while the request waits on the judge
        thread.join()
    assert replies[0].status_code == 200 and replies[0].json()["results"][0]["overall"] is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health")  # and it stopped accepting


@pytest.mark.parametrize(("host", "keys", "warned"), [("0.0.0.0", [], True), ("127.0.0.1", [], False),
                                                      ("0.0.0.0", [SecretStr("k")], False)])  # fmt: skip
def test_warning_when_public_without_keys(judge, caplog, host, keys, warned):
    settings = make_settings([judge.url])
    settings.host, settings.auth = host, AuthSettings(keys=keys)
    with (
        caplog.at_level(logging.WARNING, logger="medix_reward.api.app"),
        LiveServer(create_app(settings, encoder=CharEncoder())),
    ):
        pass
    assert any("no API keys" in r.getMessage() for r in caplog.records) is warned


def test_a_body_that_is_not_json_is_400_invalid_json(service):
    reply = httpx.post(f"{service.url}/reward", content=b'{"items": [', headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"] == {"type": "invalid_request", "message": "the body is not valid JSON",
                                     "param": None, "code": "invalid_json"}  # fmt: skip


def test_the_key_is_checked_before_the_body_is_read(judge):
    settings = make_settings([judge.url])
    settings.auth = AuthSettings(keys=[SecretStr("key-1")])
    with LiveServer(create_app(settings, encoder=CharEncoder())) as service:
        garbage = b"{" * 10_000  # not JSON: read first, it would be a 400
        reply = httpx.post(f"{service.url}/reward", content=garbage, headers={"content-type": "application/json"})
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "unauthorized"
        keyed = {"content-type": "application/json", "Authorization": "Bearer key-1"}
        assert httpx.post(f"{service.url}/reward", content=garbage, headers=keyed).status_code == 400


def test_every_error_has_a_code(service):
    for reply in (httpx.get(f"{service.url}/nowhere"), httpx.get(f"{service.url}/reward")):
        assert reply.json()["error"]["code"] in ("not_found", "method_not_allowed")
