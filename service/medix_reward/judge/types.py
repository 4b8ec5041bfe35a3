"""What a judge call ends in: a `Verdict`, or a `JudgeError` whose code is a `JudgeErrorCode`; the reply read.

Pure: no HTTP library. The service's error table (api/errors.py) and the clients' fallbacks read these codes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

JudgeErrorCode = Literal[
    "judge_timeout",  # no reply within the attempt's timeout
    "judge_unreachable",  # no connection, or it broke before a complete reply
    "judge_http_error",  # the judge answered an HTTP error
    "judge_bad_reply",  # the judge answered, but not a chat completion with one YES or NO label
    "judge_rejected_input",  # the judge refused this item's input (e.g. beyond its context length)
]
# What says the judge itself is down; judge_rejected_input (the item's fault) and judge_deadline (the caller's
# own bound) do not.
JUDGE_DOWN_CODES: frozenset[JudgeErrorCode] = frozenset(
    {"judge_unreachable", "judge_timeout", "judge_http_error", "judge_bad_reply"}
)


@dataclass(frozen=True)
class JudgeReply:
    status: int
    headers: Mapping[str, str]  # case-insensitive lookups (aiohttp's CIMultiDict, httpx.Headers)
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class JudgeError(Exception):
    """A verdict could not be had; `code` says why (JudgeErrorCode)."""

    def __init__(self, code: JudgeErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Verdict:
    yes: bool
    reply: str
    p_yes: float | None = None
    cached: bool = False
    truncated: bool = False  # the judge saw the answers cut to max_answer_chars


@dataclass
class JudgeStats:
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # per attempt: "ok" or an error code
