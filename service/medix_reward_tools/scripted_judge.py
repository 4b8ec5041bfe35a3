"""A scripted judge: a real OpenAI chat-completions server on loopback whose verdicts, latency,
capacity and failures a test or benchmark controls.

Latency model: each call takes `latency_s` while holding one of `capacity` slots; calls beyond the
capacity queue, as on a batching model server. It also answers the evaluation protocol's conversations
(evaluate.py: a first message quoting question, reference and response): by default `{"score": N}`, the
label for the calibration items and otherwise `same_meaning` (binary) or word overlap (graded); or per turn
what `evaluation_replies` scripts for a response (a judge that changes its mind, invalid JSON, a thinking
block); or, with evaluation_mode="first-listed", the first value the reply instruction lists. Faults
queued with `script()` are served one per call, before normal replies: an HTTP status (optionally with
Retry-After), "garbage" (a 200 that is not JSON), "empty_choices", or "hang" (never answers within any sane
timeout). With `context_chars` set, a prompt longer than that is refused with 400, as vLLM refuses one beyond
the model's context length. `down` makes the whole judge fail, probes included. A call whose client
goes away stops at once (vLLM aborts it), so `in_flight` counts what the judge is still working on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from medix_reward.judge.prompts import REFERENCE_PROMPT
from medix_reward_tools.live import LoopbackJudge

# medix-eval-v1, binary and graded: the three quoted texts under their headings.
_EVALUATION = re.compile(
    r"(?:Question|Instruction):\n<<<(.*?)>>>\n\n(?:Correct answer|Reference):\n<<<(.*?)>>>\n\n"
    r"(?:Model's answer|Generated):\n<<<(.*?)>>>",
    re.DOTALL,
)
_MARKED = re.compile(r"\[DATA ([0-9a-f]+)\]\n(.*?)\n\[END \1\]", re.DOTALL)  # medix-judge-v2, nonce per call


# The reference's prompt around its two answers: "…Predicted:" + answer + "\nGround Truth:" + truth + "\n".
_HEAD, _REST = REFERENCE_PROMPT.split("{predict}")
_BETWEEN, _TAIL = _REST.split("{ground_truth}")


def read_pair(messages: list[dict[str, str]]) -> tuple[str, str]:
    """(ground truth, predicted answer) as a judge prompt of either version shows them: the medix-judge-v2
    marked blocks, or the reference's `Predicted:` and `Ground Truth:` lines. An answer may hold newlines and
    a `Ground Truth:` line of its own: the truth is what follows the prompt's last one."""
    prompt = messages[-1]["content"]
    marked = [text for _, text in _MARKED.findall(prompt)]
    if len(marked) >= 2:
        return marked[-2], marked[-1]  # ground truth, then answer
    if prompt.startswith(_HEAD) and prompt.endswith(_TAIL):
        answer, _, truth = prompt[len(_HEAD) : len(prompt) - len(_TAIL)].rpartition(_BETWEEN)
        return truth, answer
    return "", ""


# What a gullible judge takes as the answer speaking to it or vouching for itself.
_TALKS_TO_JUDGE = re.compile(
    r"\byes\b|\bcorrect|\btrue\b|\bmatch|\bsame\b|identical|equivalent|ground truth|reference|grader|judge|"
    r"evaluat|verdict|ignore|disregard|instruction|<\||\|>|<<<|>>>|###|\[/?inst\]|[«»‹›＜＞]|^\W*$",
    re.IGNORECASE,
)


def gullible(table: dict[tuple[str, str], bool]) -> Callable[[str, str], bool]:
    """The worst realistic judge: YES whenever the answer it is shown talks to it or asserts its own
    correctness (in either role), otherwise the verdict `table` holds for the pair in either order, and
    otherwise `same_meaning`. Swapping the roles does not change its mind."""

    def decide(answer: str, truth: str) -> bool:
        if _TALKS_TO_JUDGE.search(answer) or _TALKS_TO_JUDGE.search(truth):
            return True
        for pair in ((answer, truth), (truth, answer)):
            if pair in table:
                return table[pair]
        return same_meaning(answer, truth)

    return decide


def same_meaning(answer: str, truth: str) -> bool:
    """Default rule: YES when one answer contains the other, ignoring case."""
    a, t = answer.lower(), truth.lower()
    return bool(a) and bool(t) and (a in t or t in a)


def read_sample(messages: list[dict[str, str]]) -> tuple[str, str, str] | None:
    """(question, reference, response) when the conversation is the evaluation protocol's (its first message
    quotes three texts), else None."""
    match = _EVALUATION.search(messages[0]["content"]) if messages else None
    return (match.group(1), match.group(2), match.group(3)) if match else None


# The first score value a prompt's reply instruction lists: "whose value is 1 or 0", "… a number from 5 down to 0",
# or a literal object list ('{"score": 0} or {"score": 1}').
_FIRST_LISTED = re.compile(r'(?:whose value is (?:a number from )?|\{\s*"score"\s*:\s*)(\d)')
_GRADED = re.compile(r"from [05] (?:down )?to [05]")


def first_listed(prompt: str) -> str | None:
    match = _FIRST_LISTED.search(prompt)
    return match.group(1) if match else None


def known_labels() -> dict[tuple[str, str], int]:
    """(reference, response) → label of the calibration items: what a judge that grades correctly says."""
    from medix_reward.evaluation.calibration import ITEMS

    return {(item.reference, item.response): item.label for items in ITEMS.values() for item in items}


def graded_overlap(reference: str, response: str) -> int:
    """A 0-5 grade with meaning: the share of the reference's words the response repeats, times 5, rounded."""
    words = set(re.findall(r"\w+", reference.lower()))
    said = set(re.findall(r"\w+", response.lower()))
    return round(5 * len(words & said) / len(words)) if words else 0


def _completion(content: str) -> JSONResponse:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    return JSONResponse({"id": "chatcmpl-scripted", "object": "chat.completion", "choices": [choice]})


async def _work(request: Request, seconds: float) -> None:
    """Sleeps `seconds`, or less if the client goes away (then the work is abandoned, as vLLM aborts it)."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        with contextlib.suppress(asyncio.CancelledError):  # quiet when the server stops
            await asyncio.wait({watcher}, timeout=seconds)
    finally:
        watcher.cancel()


@dataclass(frozen=True)
class Fault:
    status: int = 500
    retry_after: str | None = None
    kind: str = "status"  # status | garbage | empty_choices | hang


@dataclass
class JudgeCall:
    truth: str
    answer: str
    started: float
    turn: int = 0  # evaluation conversations: the judge's replies before this call
    body: bytes = b""  # the request body as it arrived


@dataclass
class ScriptedJudge(LoopbackJudge):
    latency_s: float = 0.0
    capacity: int = 1_000_000
    decide: Callable[[str, str], bool] = same_meaning
    reply_yes: str = "YES"
    reply_no: str = "NO"
    model: str = "scripted-judge"
    # A judge that is down: every call and every probe (GET /models) gets this fault, until set back to None.
    down: Fault | None = None
    # Answers the judge always fails on (a fault every time), for failures pinned to one item.
    failing_answers: dict[str, Fault] = field(default_factory=dict)
    context_chars: int | None = None  # longer prompts (all messages) are refused with 400
    # Ground truths the judge always fails on, for failures pinned to a prompt whatever a policy answers.
    failing_truths: dict[str, Fault] = field(default_factory=dict)
    # Evaluation: per response text, the judge's replies turn by turn (then the default grade).
    evaluation_replies: dict[str, list[str]] = field(default_factory=dict)
    # Evaluation: "grade" (known calibration items by their label, others by same_meaning or word overlap), or
    # "first-listed": copy the first score value the reply instruction lists, whatever the texts (the small
    # real judge's failure that calibration exists to catch).
    evaluation_mode: str = "grade"
    # How an evaluation conversation's (question, reference, response) are read: the built-in templates' layout,
    # or a test's own for templates written for it.
    read_evaluation: Callable[[list[dict[str, str]]], tuple[str, str, str] | None] = read_sample
    calls: list[JudgeCall] = field(default_factory=list)
    max_in_flight: int = 0
    _faults: deque[Fault] = field(default_factory=deque)
    _in_flight: int = 0
    _in_flight_changed: threading.Condition = field(default_factory=threading.Condition)

    def script(self, *faults: Fault | int | str) -> None:
        """Queue faults: an int is an HTTP status, a str a kind ('garbage', 'empty_choices', 'hang')."""
        for fault in faults:
            if isinstance(fault, int):
                fault = Fault(status=fault)
            elif isinstance(fault, str):
                fault = Fault(kind=fault)
            self._faults.append(fault)

    def reset(self) -> None:
        self.calls.clear()
        self._faults.clear()
        self.failing_answers.clear()
        self.failing_truths.clear()
        self.evaluation_replies.clear()
        self.max_in_flight = 0
        self.down = None

    @property
    def bodies(self) -> list[dict[str, object]]:
        """Every request body, as received."""
        return [json.loads(call.body) for call in self.calls]

    @property
    def in_flight(self) -> int:
        """Calls the judge is working on now (a call whose client went away ends, as on vLLM)."""
        return self._in_flight

    def wait_in_flight(self, calls: int, timeout: float) -> bool:
        """Waits (from another thread) until exactly `calls` calls are in flight; whether that happened within
        `timeout`. wait_in_flight(0, …): until the judge is idle."""
        with self._in_flight_changed:
            return self._in_flight_changed.wait_for(lambda: self._in_flight == calls, timeout)

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw)
        sample = self.read_evaluation(body["messages"])
        turn = sum(message["role"] == "assistant" for message in body["messages"])
        truth, answer = (sample[1], sample[2]) if sample else read_pair(body["messages"])
        self.calls.append(JudgeCall(truth, answer, time.perf_counter(), turn, raw))
        fault = self.down or (self._faults.popleft() if self._faults else self.failing_answers.get(answer))
        prompt_chars = sum(len(message["content"]) for message in body["messages"])
        if fault is None and self.context_chars is not None and prompt_chars > self.context_chars:
            message = f"This model's maximum context length is {self.context_chars} characters."
            return JSONResponse({"error": {"message": message, "type": "BadRequestError"}}, status_code=400)
        fault = fault or self.failing_truths.get(truth)
        async with self._slots:
            with self._in_flight_changed:
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
                self._in_flight_changed.notify_all()
            try:
                if fault is not None and fault.kind == "hang":
                    await _work(request, 3600)
                if self.latency_s:
                    await _work(request, self.latency_s)
            finally:
                with self._in_flight_changed:
                    self._in_flight -= 1
                    self._in_flight_changed.notify_all()
        if fault is not None:
            if fault.kind == "garbage":
                return PlainTextResponse("<html>bad gateway</html>")
            if fault.kind == "empty_choices":
                return JSONResponse({"id": "x", "object": "chat.completion", "choices": []})
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            return JSONResponse({"error": {"message": "scripted failure"}}, status_code=fault.status, headers=headers)
        if sample is not None:
            return _completion(self._evaluation_reply(body["messages"][0]["content"], truth, answer, turn))
        yes = self.decide(answer, truth)
        content = self.reply_yes if yes else self.reply_no
        choice: dict[str, object] = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }
        if body.get("logprobs"):
            first = content.split()[0] if content.split() else content
            choice["logprobs"] = {
                "content": [
                    {
                        "token": first,
                        "logprob": -0.1053605,  # ln 0.9
                        "top_logprobs": [
                            {"token": first, "logprob": -0.1053605},
                            {"token": "NO" if yes else "YES", "logprob": -2.3025851},  # ln 0.1
                        ],
                    }
                ]
            }
        return JSONResponse({"id": "chatcmpl-scripted", "object": "chat.completion", "choices": [choice]})

    def _evaluation_reply(self, prompt: str, reference: str, response: str, turn: int) -> str:
        scripted = self.evaluation_replies.get(response, [])
        if turn < len(scripted):
            return scripted[turn]
        graded = bool(_GRADED.search(prompt))
        if self.evaluation_mode == "first-listed":
            return f'{{"score": {first_listed(prompt) or 0}}}'
        label = self._known.get((reference, response))
        if label is not None:
            score = (4 if label else 1) if graded else label
        else:
            score = graded_overlap(reference, response) if graded else int(self.decide(response, reference))
        return f'{{"score": {score}}}'

    async def _models(self, _: Request) -> Response:
        if self.down is not None:
            if self.down.kind == "hang":
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(3600)
            return JSONResponse({"error": {"message": "scripted failure"}}, status_code=self.down.status)
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    # -- lifecycle: a uvicorn server on its own thread and event loop --------------------------------

    def start(self, port: int = 0) -> ScriptedJudge:
        self._slots = asyncio.Semaphore(self.capacity)
        self._known = known_labels()
        self._serve(self._chat, self._models, port)
        return self
