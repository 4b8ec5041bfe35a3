"""The SDK's core, without I/O (httpx appears only to classify its exceptions): request building,
chunking, response parsing and merging, the retry decision, backoff, and the errors. `RewardClient`
and `AsyncRewardClient` differ only in how they send and how they sleep."""

from __future__ import annotations

import logging
import os
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel

from medix_reward_client._retry import backoff_delay
from medix_reward_client.groups import group_stats
from medix_reward_client.schema import (
    RewardItem,
    RewardOptions,
    RewardRequest,
    RewardResponse,
    StageTimes,
    Usage,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
BASE_URL_ENV = "MEDIX_REWARD_URL"
API_KEY_ENV = "MEDIX_REWARD_API_KEY"
RETRYABLE_STATUS = frozenset({408, 429, 502, 503, 504})

ItemLike = RewardItem | Mapping[str, Any]

log = logging.getLogger("medix_reward_client")


class RewardError(Exception):
    """Base of every error the SDK raises."""


class APIConnectionError(RewardError):
    """The service could not be reached (after retries)."""

    def __init__(self, message: str, request_id: str | None = None):
        super().__init__(message)
        self.request_id = request_id


class APITimeoutError(APIConnectionError):
    """The service did not answer within the timeout (after retries)."""


class APIStatusError(RewardError):
    """The service answered with an error status; `body` is its error body."""

    def __init__(self, status: int, body: Any, request_id: str | None):
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") if isinstance(error, dict) else None
        super().__init__(f"HTTP {status}: {message or body!r}")
        self.status = status
        self.body = body
        self.request_id = request_id
        self.code = error.get("code") if isinstance(error, dict) else None
        self.param = error.get("param") if isinstance(error, dict) else None


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    api_key: str | None
    timeout: float
    max_retries: int | None  # None: no count limit, only retry_budget_s
    chunk_size: int
    max_concurrency: int
    retry_budget_s: float | None = None  # no retry starts later than this after the call's first attempt
    backoff_base: float = 0.5
    backoff_max: float = 8.0

    @classmethod
    def build(
        cls,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int | None,
        chunk_size: int,
        max_concurrency: int,
        retry_budget_s: float | None = None,
    ) -> ClientConfig:
        if chunk_size < 1 or max_concurrency < 1 or (max_retries is not None and max_retries < 0):
            raise ValueError("chunk_size and max_concurrency must be ≥ 1, max_retries ≥ 0")
        if retry_budget_s is not None and retry_budget_s < 0:
            raise ValueError("retry_budget_s must be ≥ 0")
        if max_retries is None and retry_budget_s is None:
            raise ValueError("retries need a bound: max_retries, retry_budget_s or both")
        url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        return cls(url, key, timeout, max_retries, chunk_size, max_concurrency, retry_budget_s)

    def headers(self, request_id: str) -> dict[str, str]:
        headers = {"X-Request-ID": request_id}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def new_request_id() -> str:
    return uuid.uuid4().hex


def to_items(items: Iterable[ItemLike]) -> list[RewardItem]:
    return [item if isinstance(item, RewardItem) else RewardItem.model_validate(item) for item in items]


def chunk_bodies(
    items: Sequence[RewardItem], options: RewardOptions | Mapping[str, Any] | None, chunk_size: int
) -> list[dict[str, Any]]:
    """JSON bodies of at most `chunk_size` items each, in order."""
    opts = RewardOptions.model_validate(options) if options is not None else None
    bodies = []
    for start in range(0, len(items), chunk_size):
        request = RewardRequest(items=list(items[start : start + chunk_size]), options=opts)
        bodies.append(request.model_dump(mode="json", exclude_none=True))
    return bodies


def parse_response(
    status: int, body: Any, request_id: str | None, model: type[BaseModel] = RewardResponse
) -> BaseModel:
    if status != 200:
        raise APIStatusError(status, body, request_id)
    return model.model_validate(body)


def after_attempt(
    config: ClientConfig,
    attempt: int,
    request_id: str,
    *,
    elapsed: float = 0.0,
    error: Exception | None = None,
    status: int | None = None,
    body: Any = None,
    retry_after: str | None = None,
    model: type[BaseModel] = RewardResponse,
) -> BaseModel | float:
    """The outcome of one attempt: the parsed response, or the delay before the next attempt (logged).
    `elapsed` is the time since the call's first attempt began. Raises the typed error when the attempt
    failed and no retry is left (count or time budget), or the failure is not retryable."""
    if status == 200:
        return parse_response(status, body, request_id, model)
    delay = retry_delay(attempt, retry_after if error is None else None, config)
    if not should_retry(attempt, config.max_retries, None if error is not None else status, body):
        retry = False
    else:
        retry = config.retry_budget_s is None or elapsed + delay <= config.retry_budget_s
    failure = _describe(error, status, body)
    if retry:
        budget = "" if config.retry_budget_s is None else f" of a {config.retry_budget_s:g} s retry budget"
        log.warning(
            "medix-reward %s: attempt %d failed (%s); retrying in %.1f s (%.1f s spent%s; request %s)",
            config.base_url, attempt + 1, failure, delay, elapsed, budget, request_id,
        )  # fmt: skip
        return delay
    if attempt > 0:
        log.error(
            "medix-reward %s: giving up after %d attempts in %.1f s (%s; request %s)",
            config.base_url, attempt + 1, elapsed, failure, request_id,
        )  # fmt: skip
    if error is not None:
        if isinstance(error, httpx.TimeoutException):
            raise APITimeoutError(f"no answer from {config.base_url}", request_id) from error
        raise APIConnectionError(f"cannot reach {config.base_url}: {error}", request_id) from error
    assert status is not None
    return parse_response(status, body, request_id, model)


def _describe(error: Exception | None, status: int | None, body: Any) -> str:
    if error is not None:
        return type(error).__name__
    detail = body.get("error") if isinstance(body, dict) else None
    code = detail.get("code") if isinstance(detail, dict) else None
    return f"HTTP {status}" + (f" {code}" if code else "")


def should_retry(attempt: int, max_retries: int | None, status: int | None, body: Any = None) -> bool:
    """After a failed attempt: status None means a connection error or timeout. max_retries None: no limit
    by count (the time budget decides). A 500 that the service wrote (its error body: the embedder failed on
    this request's text) would fail again; a 500 without that body came from something in between, such as a
    Ray Serve proxy whose replica died mid-request, and is retried."""
    if max_retries is not None and attempt >= max_retries:
        return False
    if status == 500:
        return not (isinstance(body, dict) and isinstance(body.get("error"), dict))
    return status is None or status in RETRYABLE_STATUS


def retry_delay(attempt: int, retry_after: str | None, config: ClientConfig, jitter: float | None = None) -> float:
    """Capped exponential backoff with full jitter; a server's Retry-After (seconds) is a floor (_retry.py)."""
    share = random.random() if jitter is None else jitter
    return backoff_delay(
        attempt, base=config.backoff_base, cap=config.backoff_max, jitter=share, retry_after=retry_after,
        retry_after_cap=config.backoff_max * 4,
    )  # fmt: skip


def merge(responses: Sequence[RewardResponse]) -> RewardResponse:
    """One response from the chunks' responses, in order; groups recomputed over all results."""
    if len(responses) == 1:
        return responses[0]
    results = [result for response in responses for result in response.results]
    usages = [response.usage for response in responses]

    def total(name: str) -> int:
        return sum(getattr(usage, name) for usage in usages)

    usage = Usage(
        items=total("items"),
        judge_pairs=total("judge_pairs"),
        judge_calls=total("judge_calls"),
        judge_cache_hits=total("judge_cache_hits"),
        texts_encoded=total("texts_encoded"),
        embed_cache_hits=total("embed_cache_hits"),
        # Chunks run concurrently: the slowest chunk's stage times bound the whole.
        seconds=StageTimes(
            **{f: max(getattr(u.seconds, f) for u in usages) for f in ("checks_s", "judge_s", "embed_s", "total_s")}
        ),
    )
    extra = {k: v for k, v in (responses[0].model_extra or {}).items()}
    return RewardResponse(
        preset=responses[0].preset, results=results, groups=group_stats(results), usage=usage, **extra
    )
