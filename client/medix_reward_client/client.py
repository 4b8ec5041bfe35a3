"""`RewardClient` and `AsyncRewardClient`: the same methods and arguments; only sending and sleeping differ."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from medix_reward_client._core import (
    ClientConfig,
    ItemLike,
    after_attempt,
    chunk_bodies,
    merge,
    new_request_id,
    to_items,
)
from medix_reward_client.schema import (
    EvaluateItem,
    EvaluateOptions,
    EvaluateRequest,
    EvaluateResponse,
    RewardOptions,
    RewardResponse,
)

Options = RewardOptions | Mapping[str, Any] | None
EvalOptions = EvaluateOptions | Mapping[str, Any] | None
M = TypeVar("M", bound=BaseModel)


def evaluate_body(items: Iterable[EvaluateItem | Mapping[str, Any]], options: EvalOptions) -> dict[str, Any]:
    request = EvaluateRequest(
        items=[item if isinstance(item, EvaluateItem) else EvaluateItem.model_validate(item) for item in items],
        options=EvaluateOptions.model_validate(options) if options is not None else None,
    )
    return request.model_dump(mode="json", exclude_none=True)


def _reply_fields(reply: httpx.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        body = reply.text[:1000]
    return {"status": reply.status_code, "body": body, "retry_after": reply.headers.get("retry-after")}


class RewardClient:
    """Scores batches against a medix-reward service. Large batches go out in chunks, concurrently.

    base_url: default $MEDIX_REWARD_URL, else http://127.0.0.1:8080. api_key: default $MEDIX_REWARD_API_KEY.
    A failed attempt is retried (each wait logged) while both bounds allow: at most `max_retries` retries
    (None: no count limit) and no retry starting later than `retry_budget_s` seconds after the first attempt
    (None: no time limit). `timeout` bounds each attempt.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        max_retries: int | None = 3,
        retry_budget_s: float | None = None,
        chunk_size: int = 1024,
        max_concurrency: int = 4,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.config = ClientConfig.build(
            base_url, api_key, timeout, max_retries, chunk_size, max_concurrency, retry_budget_s
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)
        self._sleep = time.sleep
        self._clock = time.monotonic
        self._url = f"{self.config.base_url}/reward"

    def score(self, items: Iterable[ItemLike], options: Options = None) -> RewardResponse:
        bodies = chunk_bodies(to_items(items), options, self.config.chunk_size)
        if len(bodies) == 1:
            return merge([self._send(bodies[0])])
        with ThreadPoolExecutor(max_workers=self.config.max_concurrency) as pool:
            return merge(list(pool.map(self._send, bodies)))

    def evaluate(
        self, items: Iterable[EvaluateItem | Mapping[str, Any]], options: EvalOptions = None
    ) -> EvaluateResponse:
        """Grade answers with the MediX-R1 evaluation protocol (`POST /evaluate`), in one request."""
        response = self._send(evaluate_body(items, options), "/evaluate", EvaluateResponse)
        assert isinstance(response, EvaluateResponse)
        return response

    def _send(self, body: dict[str, Any], path: str = "/reward", model: type[M] = RewardResponse) -> M:
        request_id, attempt, started = new_request_id(), 0, self._clock()
        url = f"{self.config.base_url}{path}"
        while True:
            try:
                reply = self._http.post(url, json=body, headers=self.config.headers(request_id))
            except httpx.TransportError as exc:
                outcome = after_attempt(self.config, attempt, request_id, elapsed=self._clock() - started, error=exc)
            else:
                fields = _reply_fields(reply)
                outcome = after_attempt(
                    self.config, attempt, request_id, elapsed=self._clock() - started, model=model, **fields
                )
            if isinstance(outcome, model):
                return outcome
            assert isinstance(outcome, float | int)
            self._sleep(outcome)
            attempt += 1

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> RewardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRewardClient:
    """The async twin of `RewardClient`: the same arguments, `await client.score(items)`."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        max_retries: int | None = 3,
        retry_budget_s: float | None = None,
        chunk_size: int = 1024,
        max_concurrency: int = 4,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.config = ClientConfig.build(
            base_url, api_key, timeout, max_retries, chunk_size, max_concurrency, retry_budget_s
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport)
        self._sleep = asyncio.sleep
        self._clock = time.monotonic
        self._url = f"{self.config.base_url}/reward"

    async def score(self, items: Iterable[ItemLike], options: Options = None) -> RewardResponse:
        bodies = chunk_bodies(to_items(items), options, self.config.chunk_size)
        slots = asyncio.Semaphore(self.config.max_concurrency)

        async def bounded(body: dict[str, Any]) -> RewardResponse:
            async with slots:
                return await self._send(body)

        return merge(await asyncio.gather(*(bounded(body) for body in bodies)))

    async def evaluate(
        self, items: Iterable[EvaluateItem | Mapping[str, Any]], options: EvalOptions = None
    ) -> EvaluateResponse:
        """Grade answers with the MediX-R1 evaluation protocol (`POST /evaluate`), in one request."""
        response = await self._send(evaluate_body(items, options), "/evaluate", EvaluateResponse)
        assert isinstance(response, EvaluateResponse)
        return response

    async def _send(self, body: dict[str, Any], path: str = "/reward", model: type[M] = RewardResponse) -> M:
        request_id, attempt, started = new_request_id(), 0, self._clock()
        url = f"{self.config.base_url}{path}"
        while True:
            try:
                reply = await self._http.post(url, json=body, headers=self.config.headers(request_id))
            except httpx.TransportError as exc:
                outcome = after_attempt(self.config, attempt, request_id, elapsed=self._clock() - started, error=exc)
            else:
                fields = _reply_fields(reply)
                outcome = after_attempt(
                    self.config, attempt, request_id, elapsed=self._clock() - started, model=model, **fields
                )
            if isinstance(outcome, model):
                return outcome
            assert isinstance(outcome, float | int)
            await self._sleep(outcome)
            attempt += 1

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncRewardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
