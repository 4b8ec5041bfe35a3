"""Metrics, /config, request ids, auth, limits just under and just over, cancellation, graceful shutdown."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading

import httpx
import pytest
from medix_reward_tools.common import grpo_batch
from medix_reward_tools.scripted_judge import Fault
from pydantic import SecretStr

from medix_reward.api.observability import JsonFormatter, request_id_var
from tests.helpers import CharEncoder, HeldVerdicts, eventually


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


def test_config_and_the_hash_every_response_carries(live_service):
    service = live_service(judge={"api_key": "judge-secret"})
    config = httpx.get(f"{service.url}/config").json()
    reward = httpx.post(f"{service.url}/reward", json={"items": grpo_batch(1, 2)}, timeout=60).json()
    assert reward["config_hash"] == config["config_hash"] and len(config["config_hash"]) == 16
    assert reward["version"] == config["version"]
    assert config["settings"]["reward"]["embed_threshold"] == 0.8
    assert "judge-secret" not in json.dumps(config)
    changed = live_service(reward={"embed_threshold": 0.7})
    assert httpx.get(f"{changed.url}/config").json()["config_hash"] != config["config_hash"]


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
def test_auth(live_service, headers, status):
    service = live_service(auth={"keys": ["key-1", "key-2"]})
    body = {"items": grpo_batch(1, 1)}
    reward = httpx.post(f"{service.url}/reward", json=body, headers=headers, timeout=60)
    assert reward.status_code == status
    assert httpx.get(f"{service.url}/config", headers=headers).status_code == status
    assert httpx.get(f"{service.url}/health").status_code == 200  # probes stay open
    assert httpx.get(f"{service.url}/metrics").status_code == 200
    if status == 401:
        assert reward.json()["error"]["code"] == "unauthorized" and reward.headers["www-authenticate"] == "Bearer"


def test_body_size_limit_just_under_and_just_over(live_service):
    item = {"response": "<answer>Mass</answer>", "ground_truth": "<X_RAY> Mass"}
    body = json.dumps({"items": [item]}).encode()
    service = live_service(limits={"max_body_bytes": len(body)}, encoder=CharEncoder())
    headers = {"content-type": "application/json"}
    assert httpx.post(f"{service.url}/reward", content=body, headers=headers).status_code == 200
    over = httpx.post(f"{service.url}/reward", content=body + b" ", headers=headers)
    assert over.status_code == 413 and over.json()["error"]["code"] == "body_too_large"

    def streamed():  # no Content-Length: the limit is counted as the body arrives
        yield body
        yield b" "

    chunked = httpx.post(f"{service.url}/reward", content=streamed(), headers=headers)
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "body_too_large"


# Each per-request limit of admission.py, at its value and one past it (issue 21 merged the copies that
# test_api.py and test_hostile.py held). A request of four items, every field exactly at its limit, passes.
ITEM_LIMITS = {"max_items": 4, "max_response_chars": 40, "max_truth_chars": 20, "max_id_chars": 16,
               "max_prompt_chars": 64}  # fmt: skip
AT_THE_LIMIT = {"response": "<answer>Mass</answer>".ljust(40), "ground_truth": "<X_RAY> Mass".ljust(20),
                "id": "i" * 16, "group_id": "g" * 16, "prompt": "p" * 64}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "param", "code"),
    [(None, None, "items", "too_many_items"), ("response", "r" * 41, "items[3].response", "too_long"),
     ("ground_truth", "<X_RAY> " + "g" * 13, "items[3].ground_truth", "too_long"),
     ("id", "i" * 17, "items[3].id", "too_long"), ("id", 10**16, "items[3].id", "too_long"),
     ("group_id", "g" * 17, "items[3].group_id", "too_long"), ("prompt", "p" * 65, "items[3].prompt", "too_long")],
    ids=["max_items", "max_response_chars", "max_truth_chars", "max_id_chars", "max_id_chars_int",
         "max_id_chars_group", "max_prompt_chars"],
)  # fmt: skip
def test_each_item_limit_just_under_and_just_over(live_service, field, value, param, code):
    service = live_service(limits=ITEM_LIMITS, encoder=CharEncoder())
    at_the_limit = httpx.post(f"{service.url}/reward", json={"items": [AT_THE_LIMIT] * 4}, timeout=60)
    assert at_the_limit.status_code == 200, at_the_limit.text
    over = [dict(AT_THE_LIMIT) for _ in range(4 if field else 5)]
    if field:
        over[3][field] = value
    reply = httpx.post(f"{service.url}/reward", json={"items": over}, timeout=60)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert (error["param"], error["code"]) == (param, code) and param in error["message"]


@pytest.mark.parametrize(("limit", "items"), [("max_concurrent_requests", 1), ("max_inflight_items", 8)])
def test_each_admission_limit_is_429_with_retry_after(live_service, judge, limit, items):
    """One request at the judge fills the limit: another is refused at once, and served once the first is done."""
    held = judge.decide = HeldVerdicts()
    service = live_service(limits={limit: 1 if limit == "max_concurrent_requests" else 10})
    body = {"items": [{"response": f"<answer>Finding {i}</answer>", "ground_truth": "<X_RAY> Mass"}
                      for i in range(items)]}  # fmt: skip
    first: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: first.append(httpx.post(f"{service.url}/reward", json=body, timeout=60)))
    thread.start()
    try:
        held.wait_reached()
        second = httpx.post(f"{service.url}/reward", json=body, timeout=60)
    finally:
        held.release()
        thread.join()
    assert first[0].status_code == 200, first[0].text
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert second.json()["error"]["code"] == "overloaded"
    assert httpx.post(f"{service.url}/reward", json=body, timeout=60).status_code == 200


def test_graceful_shutdown_finishes_in_flight_requests(live_service, judge):
    held = judge.decide = HeldVerdicts()
    server = live_service()
    replies: list[httpx.Response] = []
    item = {"response": "<answer>Big mass</answer>", "ground_truth": "<X_RAY> Mass"}
    thread = threading.Thread(
        target=lambda: replies.append(httpx.post(f"{server.url}/reward", json={"items": [item]}, timeout=30))
    )
    thread.start()
    held.wait_reached()
    stopping = threading.Thread(target=server.__exit__)  # asks uvicorn to stop while the request waits on the judge
    stopping.start()
    eventually(lambda: not accepts(server.port), what="the server stopped accepting")
    held.release()
    thread.join()
    stopping.join()
    assert replies[0].status_code == 200 and replies[0].json()["results"][0]["overall"] is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health")  # and it stopped accepting


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize(("host", "keys", "warned"), [("0.0.0.0", [], True), ("127.0.0.1", [], False),
                                                      ("0.0.0.0", [SecretStr("k")], False)])  # fmt: skip
def test_warning_when_public_without_keys(live_service, caplog, host, keys, warned):
    with caplog.at_level(logging.WARNING, logger="medix_reward.api.app"):
        live_service(host=host, auth={"keys": keys}, encoder=CharEncoder())
    assert any("no API keys" in r.getMessage() for r in caplog.records) is warned


def test_a_body_that_is_not_json_is_400_invalid_json(service):
    reply = httpx.post(f"{service.url}/reward", content=b'{"items": [', headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"] == {"type": "invalid_request", "message": "the body is not valid JSON",
                                     "param": None, "code": "invalid_json"}  # fmt: skip


def test_the_key_is_checked_before_the_body_is_read(live_service):
    service = live_service(auth={"keys": ["key-1"]}, encoder=CharEncoder())
    garbage = b"{" * 10_000  # not JSON: read first, it would be a 400
    reply = httpx.post(f"{service.url}/reward", content=garbage, headers={"content-type": "application/json"})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "unauthorized"
    keyed = {"content-type": "application/json", "Authorization": "Bearer key-1"}
    assert httpx.post(f"{service.url}/reward", content=garbage, headers=keyed).status_code == 400


def test_every_error_has_a_code(service):
    for reply in (httpx.get(f"{service.url}/nowhere"), httpx.get(f"{service.url}/reward")):
        assert reply.json()["error"]["code"] in ("not_found", "method_not_allowed")
