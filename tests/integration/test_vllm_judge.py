"""The integration tier: `/reward` end to end through a real vLLM judge (CPU build, SmolLM2-135M from a
PyPI package), started once for this module. SmolLM2 says "Yes" to nearly anything: these tests prove
the protocol, the parsing of a real model's replies, concurrency and failure paths, not verdict quality."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import pytest
from medix_reward_tools.common import distinct_items, free_port, grpo_batch
from medix_reward_tools.judge_stack import JudgeStack
from medix_reward_tools.live import LiveServer

from medix_reward.judge.prompts import is_yes
from tests.helpers import eventually, make_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vllm():
    stack = JudgeStack(instance="judge-tests")  # the prepared venv and model; its own PID file and log
    url = stack.start(port=free_port())
    try:
        yield stack, url
    finally:
        stack.stop()


def service_for(live_service, url: str, stack: JudgeStack, **judge: object) -> LiveServer:
    return live_service(make_settings([url], judge={"model": stack.served_name, "timeout_s": 60.0, **judge}))


def test_grpo_batch_through_the_real_judge(vllm, live_service):
    stack, url = vllm
    service = service_for(live_service, url, stack)
    items = grpo_batch(prompts=4, group=8)
    reply = httpx.post(f"{service.url}/reward", json={"items": items}, timeout=300)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    judged = [r for r in body["results"] if r["details"]["shortcut"] is None]
    assert judged and body["usage"]["judge_calls"] == body["usage"]["judge_pairs"]  # no retries needed
    for result in judged:
        details = result["details"]
        assert isinstance(details["judge_reply"], str) and details["judge_reply"].strip()
        assert details["judge_verdict"] == ("YES" if is_yes(details["judge_reply"]) else "NO")
        assert result["scores"]["accuracy_llm"] == (1.0 if details["judge_verdict"] == "YES" else 0.0)
        assert result["overall"] is not None and result["errors"] == {}


def vllm_metric(url: str, name: str) -> float:
    """The sum over labels of one of the judge's own Prometheus metrics."""
    text = httpx.get(url.removesuffix("/v1") + "/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(rf"^vllm:{name}\{{[^}}]*\}} (\S+)$", text, re.M))


def test_judge_calls_are_in_flight_together(vllm, live_service):
    stack, url = vllm
    seen: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(vllm_metric(url, "num_requests_running") + vllm_metric(url, "num_requests_waiting"))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    service = service_for(live_service, url, stack, concurrency=16)
    watcher.start()
    try:
        reply = httpx.post(f"{service.url}/reward", json={"items": distinct_items(48)}, timeout=300)
    finally:
        done.set()
        watcher.join()
    assert reply.status_code == 200 and reply.json()["usage"]["judge_calls"] == 48
    assert max(seen) > 1, "the judge never had more than one of our calls at once"


def test_logprobs_report_p_yes(vllm, live_service):
    stack, url = vllm
    service = service_for(live_service, url, stack, logprobs=True)
    reply = httpx.post(f"{service.url}/reward", json={"items": distinct_items(4)}, timeout=300)
    for result in reply.json()["results"]:
        p_yes = result["details"]["judge_p_yes"]
        assert isinstance(p_yes, float) and 0.0 <= p_yes <= 1.0


def test_evaluation_protocol_through_the_real_judge(vllm, live_service):
    """`POST /evaluate` on a few samples: every sample is either scored from the real judge's replies (rounds of
    one conversation, each reply a strict JSON score) or failed with judge_unparseable after its correction;
    a multiple-choice letter is scored by rule without a call. Not a test of the verdicts (SmolLM2)."""
    from medix_reward.evaluation.rules import parse_score

    stack, url = vllm
    question = "Which drug reverses opioid overdose?\n\nChoices:\nA. Flumazenil\nB. Naloxone\nC. Atropine"
    items = [
        {"question": question, "reference": "Naloxone", "response": "<think>opioid</think> B", "task": "medqa"},
        {"question": question, "reference": "Naloxone", "response": "Naloxone, given IV", "task": "medqa"},
        {"question": "Is there a pneumothorax?", "reference": "No", "response": "No pneumothorax.", "task": "rad_vqa"},
        {"question": "Generate a detailed report based on the scan.", "reference": "Small right pleural effusion.",
         "response": "A small right pleural effusion.", "task": "mimic_cxr_report_generation"},
    ]  # fmt: skip
    # SmolLM2 rarely stops by itself: 32 tokens hold a {"score": N} reply and keep each call to seconds. Calibration
    # off: this is the plumbing, and a 135M judge fails it (~180 more calls to learn that); the calibration's own
    # tests are tests/evaluation/test_calibration.py, and docs/evaluation.md's demo run ran it on the Qwen judge.
    evaluate = {"max_tokens": 32, "timeout_s": 120.0, "calibration": False}
    service = live_service(
        make_settings([url], judge={"model": stack.served_name, "timeout_s": 60.0}, evaluate=evaluate)
    )
    reply = httpx.post(f"{service.url}/evaluate", json={"items": items, "options": {"rounds": 2}}, timeout=900)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    rule, *judged = body["results"]
    assert rule["method"] == "rule" and rule["score"] == 1.0 and rule["rounds"] == []
    errors = [r["error"] for r in judged]
    assert body["usage"]["judge_calls"] == sum(len(r["rounds"]) for r in judged), errors  # no retries or hits
    for result in judged:
        assert result["method"] == "judge" and result["rounds"]
        for round_ in result["rounds"]:
            assert isinstance(round_["reply"], str) and not round_["cached"]
            if round_["score"] is not None:
                assert round_["score"] == parse_score(round_["reply"], result["kind"])
        if result["error"] is None:
            assert sum(r["score"] is not None for r in result["rounds"]) == 2
            assert result["score"] is not None and 0 <= result["score"] <= (5 if result["kind"] == "graded" else 1)
        else:
            assert result["error"]["code"] == "judge_unparseable" and result["score"] is None


def test_medix_r1_verdicts_equal_direct_calls_with_the_reference_prompt(vllm, minilm):
    """Issue 22 on a real model: the service's medix-r1 requests are the reference's bytes, and its verdicts those
    of the same pairs sent directly as the reference sends them (`integrity --parity` on a few items)."""
    from medix_reward_tools.integrity import load_corpus
    from medix_reward_tools.parity import run_parity

    stack, url = vllm
    corpus = load_corpus()
    cases = [c for family in ("legit", "wrong", "hack") for c in [c for c in corpus if c.family == family][:5]]
    settings = make_settings([url], judge={"model": stack.served_name, "timeout_s": 60.0})
    report = asyncio.run(run_parity(settings, cases, minilm))
    assert len(report.pairs) >= 10 and report.bodies_equal == len(report.pairs) and not report.pair_mismatches
    # Identical bytes can only get another verdict from the judge itself: a near tie it answers both ways.
    assert report.disagreements == report.judge_flips, [(p.case.id, p.service, p.again) for p in report.disagreements]


def test_judge_stopped_mid_run_is_reported_never_zero(vllm, live_service):
    """Runs last in this module: it stops the shared judge."""
    stack, url = vllm
    service = service_for(live_service, url, stack, concurrency=2, max_retries=1, timeout_s=10.0)
    replies: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: replies.append(
            httpx.post(f"{service.url}/reward", json={"items": distinct_items(150)}, timeout=300)
        )
    )
    answered_before = vllm_metric(url, "request_success_total")
    request.start()
    # Some of our calls have been answered; most are still to come.
    eventually(lambda: vllm_metric(url, "request_success_total") >= answered_before + 4, timeout_s=300)
    stack.stop()
    request.join()
    reply = replies[0]
    assert reply.status_code == 200, reply.text  # some calls succeeded, so the batch is not a whole failure
    results = reply.json()["results"]
    failed = [r for r in results if r["scores"]["accuracy_llm"] is None]
    assert failed, "stopping the judge mid-run must leave unscored items"
    for result in failed:
        assert result["overall"] is None
        assert result["errors"]["accuracy_llm"]["code"] in ("judge_unreachable", "judge_timeout", "judge_http_error")
    for result in results:
        if result["scores"]["accuracy_llm"] == 0.0:  # a zero is a real NO, never a failure in disguise
            assert result["details"]["judge_verdict"] == "NO"
