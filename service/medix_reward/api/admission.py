"""Admission: every limit a caller can hit before any work is done, and what they get past it.

| Check, in order                     | Setting                                   | Past it                          |
| ----------------------------------- | ----------------------------------------- | -------------------------------- |
| bearer key, before the body is read | `auth.keys`                               | 401 `unauthorized`               |
| body size (Content-Length or count) | `limits.max_body_bytes`                   | 413 `body_too_large`             |
| a body that stops arriving          | `limits.body_timeout_s`                   | 408 `body_timeout`, closed       |
| a body that trickles in             | `limits.body_deadline_s` (in all)         | 408 `body_timeout`, closed       |
| items per request                   | `limits.max_items`                        | 422 `too_many_items`, `items`    |
| characters per field                | `limits.max_{response,truth,prompt,id}_…` | 422 `too_long`, the field        |
| text not encodable as UTF-8         | none (e.g. a lone surrogate `\\ud800`)    | 422 `invalid_text`, the field    |
| requests being scored               | `limits.max_concurrent_requests`          | 429 `overloaded`, `Retry-After`  |
| items being scored                  | `limits.max_inflight_items`               | 429 `overloaded`, `Retry-After`  |

Connections that never send a complete request head are the server's (connections.py). The first four are
ASGI middleware (they answer before the app reads the body); the rest run in the
route, after parsing, through `Admission.admit`; `/evaluate` passes the same checks on its own fields.
"""

from __future__ import annotations

import asyncio
import hmac
import math
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medix_reward.api.errors import (
    BodyTimedOut,
    BodyTooLarge,
    InvalidField,
    Overloaded,
    ServiceError,
    Unauthorized,
    raw_error,
)
from medix_reward.api.metrics import Metrics
from medix_reward.settings import LimitsSettings
from medix_reward_client.schema import EvaluateRequest, RewardRequest


async def _refuse(send: Send, exc: ServiceError) -> None:
    status, headers, body = raw_error(exc)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class KeyCheck:
    """Refuses a protected path without one of `keys` as its bearer token, before the body is read.

    Every key is compared in constant time, so timing says nothing about which or how much matched.
    """

    def __init__(self, app: ASGIApp, keys: list[SecretStr], protected: frozenset[str]):
        self.app = app
        self.keys = [key.get_secret_value().encode() for key in keys]
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.keys and scope["path"] in self.protected:
            authorization = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = authorization.partition(b" ")
            given = token.strip() if scheme.lower() == b"bearer" else b""
            if not any([hmac.compare_digest(given, key) for key in self.keys]):
                await _refuse(send, Unauthorized("missing or wrong bearer token"))
                return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Refuses a body over `limit` bytes, by Content-Length up front or by counting a streamed body."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    def _error(self) -> BodyTooLarge:
        return BodyTooLarge(f"request body larger than {self.limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _refuse(send, self._error())
            return
        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit and not refused:
                    # Answer 413 now; whatever the app makes of the aborted read is dropped below.
                    refused = True
                    await _refuse(send, self._error())
                    raise self._error()
            return message

        async def send_unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, send_unless_refused)


class BodyTimeout:
    """Answers 408 and closes the connection when the next part of a request body does not arrive within
    `timeout_s`, or the whole body within `deadline_s` of the first read: a client that stalls or trickles
    mid-upload (a byte every few seconds) must not hold a request slot and its buffers for ever.

    Only reads of the body are timed; once it is complete, waiting for the disconnect is not."""

    def __init__(self, app: ASGIApp, timeout_s: float, deadline_s: float = math.inf):
        self.app = app
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False
        refused = False
        started = False
        deadline = asyncio.get_running_loop().time() + self.deadline_s

        async def timed_receive() -> Message:
            nonlocal complete, refused
            if complete:
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), min(self.timeout_s, max(left, 0)))
            except TimeoutError:
                if left < self.timeout_s:
                    error = BodyTimedOut(f"the request body did not arrive within {self.deadline_s:g} s")
                else:
                    error = BodyTimedOut(f"no part of the request body arrived for {self.timeout_s:g} s")
                if not started and not refused:
                    refused = True
                    await _refuse(send, error)
                raise error from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def send_unless_refused(message: Message) -> None:
            nonlocal started
            if not refused:
                started = True
                await send(message)

        await self.app(scope, timed_receive, send_unless_refused)


# Each text field, with the limit on its length.
_TEXT_LIMITS = (
    ("response", "max_response_chars"),
    ("ground_truth", "max_truth_chars"),
    ("answer", "max_truth_chars"),
    ("modality", "max_truth_chars"),
    ("prompt", "max_prompt_chars"),
    ("id", "max_id_chars"),
    ("group_id", "max_id_chars"),
)
# The same for POST /evaluate: the model's answer, the reference, the question (which carries the choices).
EVALUATE_TEXT_LIMITS = (
    ("response", "max_response_chars"),
    ("reference", "max_truth_chars"),
    ("question", "max_prompt_chars"),
    ("task", "max_id_chars"),
    ("id", "max_id_chars"),
)


def check_fields(
    request: RewardRequest | EvaluateRequest, limits: LimitsSettings, fields: tuple[tuple[str, str], ...] = _TEXT_LIMITS
) -> None:
    """What a schema cannot know: sizes (they are settings), and text that cannot be written out as UTF-8.

    A lone surrogate ("\\ud800") is valid JSON but no tokenizer, judge or response encoder can take it; refused
    here, it is the sender's 422 rather than a 500 for everyone batched with it."""
    if len(request.items) > limits.max_items:
        raise InvalidField(f"items: at most {limits.max_items} items per request", param="items", code="too_many_items")
    for i, item in enumerate(request.items):
        for name, setting in fields:
            value = getattr(item, name)
            if value is None:
                continue
            text = value if isinstance(value, str) else str(value)
            limit = getattr(limits, setting)
            if len(text) > limit:
                param = f"items[{i}].{name}"
                raise InvalidField(f"{param}: longer than {limit} characters", param=param, code="too_long")
            if not _encodable(text):
                param = f"items[{i}].{name}"
                message = f"{param}: not valid Unicode text (a lone surrogate such as \\ud800)"
                raise InvalidField(message, param=param, code="invalid_text")


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Admission:
    """Requests and items being scored, across all callers: refused at once (429) rather than queued."""

    def __init__(self, limits: LimitsSettings, metrics: Metrics | None = None):
        self.limits = limits
        self.metrics = metrics
        self.inflight_items = 0
        self.inflight_requests = 0
        self.admitted_items = 0  # ever: what memory.release_when_idle watches

    @contextmanager
    def admit(
        self, request: RewardRequest | EvaluateRequest, fields: tuple[tuple[str, str], ...] = _TEXT_LIMITS
    ) -> Iterator[None]:
        check_fields(request, self.limits, fields)
        n = len(request.items)
        if self.inflight_requests >= self.limits.max_concurrent_requests:
            limit = self.limits.max_concurrent_requests
            raise Overloaded(f"{self.inflight_requests} requests in flight; limit {limit}")
        if self.inflight_items + n > self.limits.max_inflight_items:
            raise Overloaded(f"{self.inflight_items} items in flight; limit {self.limits.max_inflight_items}")
        self.inflight_items += n
        self.inflight_requests += 1
        self.admitted_items += n
        self._gauge()
        try:
            yield
        finally:
            self.inflight_items -= n
            self.inflight_requests -= 1
            self._gauge()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.inflight_items.set(self.inflight_items)
