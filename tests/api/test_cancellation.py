"""A request's judge calls end at the judge when the request's deadline passes or its client goes away
(issue 24): the scripted judge abandons a call whose client disconnected, as vLLM aborts it, and counts what
it is still working on. Waits are on the judge's own signal, bounded far below its one-hour hang."""

from __future__ import annotations

import json
import socket

import httpx
from medix_reward_tools.scripted_judge import Fault, ScriptedJudge

from tests.helpers import eventually

ITEMS = [{"response": f"<X_RAY><thinking>r</thinking><answer>Mass {i}</answer>", "ground_truth": "<X_RAY> Big"}
         for i in range(4)]  # fmt: skip
BOUND_S = 60.0  # the judge's hang lasts an hour: idle within this means the calls were cancelled (a wait, not
# a speed claim: it ends as soon as the judge is idle)


def test_a_deadline_leaves_no_call_running_at_the_judge(live_service, judge: ScriptedJudge):
    service = live_service(judge={"timeout_s": 3600})
    judge.down = Fault(kind="hang")
    body = {"items": ITEMS, "options": {"deadline_s": 0.5}}
    reply = httpx.post(f"{service.url}/reward", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    assert {r["errors"]["accuracy_llm"]["code"] for r in reply.json()["results"]} == {"judge_deadline"}
    assert judge.max_in_flight == 4
    assert judge.wait_in_flight(0, BOUND_S), judge.in_flight


def test_a_client_that_goes_away_leaves_no_call_running_at_the_judge(live_service, judge: ScriptedJudge):
    service = live_service(judge={"timeout_s": 3600})
    judge.down = Fault(kind="hang")
    body = json.dumps({"items": ITEMS}).encode()
    head = f"POST /reward HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", service.port)) as client:
        client.sendall(head.encode() + body)
        assert judge.wait_in_flight(4, BOUND_S), judge.in_flight  # every call is at the judge
    # The client hung up: the service cancels the request, and with it the calls.
    assert judge.wait_in_flight(0, BOUND_S), judge.in_flight
    cancelled = "medix_reward_requests_cancelled_total 1.0"
    eventually(lambda: cancelled in httpx.get(f"{service.url}/metrics").text, BOUND_S, what="the cancellation count")
    assert len(judge.calls) == 4  # the request is over and nothing was retried: no call was made after it
    assert httpx.get(f"{service.url}/health").status_code == 200
