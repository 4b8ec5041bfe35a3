"""The HTTP app: thin routes over RewardPipeline, one error body for every failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medix_reward import __version__
from medix_reward.embedder import EmbedderError, EmbeddingCache, Encoder, MicroBatcher, SentenceTransformerEncoder
from medix_reward.judge import JudgeClient, judge_http_clients
from medix_reward.pipeline import JudgeDown, Overloaded, RewardPipeline
from medix_reward.protocols import (
    OpenRLHFRequest,
    OpenRLHFResponse,
    SlimeRequest,
    SlimeResponse,
    openrlhf_response,
    slime_response,
)
from medix_reward.settings import LimitsSettings, Settings
from medix_reward_client.adapters._common import RewardUnavailable
from medix_reward_client.schema import ErrorBody, RewardRequest, RewardResponse

log = logging.getLogger(__name__)

_MAX_MESSAGE_CHARS = 500


class InvalidField(Exception):
    def __init__(self, param: str, message: str, code: str):
        super().__init__(message)
        self.param, self.message, self.code = param, message, code


def error_response(
    status: int, type_: str, message: str, *, param: str | None = None, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:  # fmt: skip
    body = {"error": {"type": type_, "message": message[:_MAX_MESSAGE_CHARS], "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _param(loc: tuple[Any, ...]) -> str:
    """('body', 'items', 3, 'response') → 'items[3].response'."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_limits(request: RewardRequest, limits: LimitsSettings) -> None:
    if len(request.items) > limits.max_items:
        raise InvalidField("items", f"at most {limits.max_items} items per request", "too_many_items")
    for i, item in enumerate(request.items):
        if len(item.response) > limits.max_response_chars:
            raise InvalidField(
                f"items[{i}].response", f"longer than {limits.max_response_chars} characters", "too_long"
            )
        for name in ("ground_truth", "answer", "modality"):
            value = getattr(item, name)
            if value is not None and len(value) > limits.max_truth_chars:
                raise InvalidField(f"items[{i}].{name}", f"longer than {limits.max_truth_chars} characters", "too_long")


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        413: "Request body too large",
        422: "Invalid request: `error.param` names the field",
        429: "Overloaded: retry after `Retry-After` seconds",
        500: "Internal error (e.g. the embedding model failed)",
        502: "Every judge call of the batch failed",
        503: "Not ready",
        504: "Every judge call of the batch timed out",
    }
    return {status: {"model": ErrorBody, "description": descriptions[status]} for status in statuses}


def create_app(
    settings: Settings | None = None,
    *,
    encoder: Encoder | None = None,
    judge_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the service. Tests inject a fake encoder or judge transport; production loads both from settings."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = encoder or await asyncio.to_thread(SentenceTransformerEncoder, settings.embedder)
        await asyncio.to_thread(model.encode, ["warm-up"])
        batcher = MicroBatcher(model, settings.embedder.max_batch_size, settings.embedder.max_wait_ms / 1000)
        batcher.start()
        http = judge_http_clients(settings.judge, judge_transport)
        try:
            app.state.batcher = batcher
            app.state.judge = JudgeClient(settings.judge, http)
            app.state.pipeline = RewardPipeline(
                settings.reward,
                settings.limits,
                app.state.judge,
                EmbeddingCache(batcher, settings.embedder.cache_size),
            )
            log.info("medix-reward %s ready on embedder %s", __version__, settings.embedder.model)
            yield
        finally:
            await batcher.stop()
            await asyncio.gather(*(client.aclose() for client in http))

    app = FastAPI(
        title="medix-reward",
        version=__version__,
        description="The MediX-R1 composite reward for RL trainers: batched, concurrent, explicit about failure.",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        param = _param(tuple(first.get("loc", ())))
        return error_response(
            422, "invalid_request", f"{param}: {first['msg']}{more}", param=param, code="validation_error"
        )

    @app.exception_handler(InvalidField)
    async def _invalid_field(_: Request, exc: InvalidField) -> JSONResponse:
        return error_response(422, "invalid_request", f"{exc.param}: {exc.message}", param=exc.param, code=exc.code)

    @app.exception_handler(Overloaded)
    async def _overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        return error_response(429, "overloaded", str(exc), code="overloaded", headers={"Retry-After": "1"})

    @app.exception_handler(JudgeDown)
    async def _judge_down(_: Request, exc: JudgeDown) -> JSONResponse:
        status = 504 if exc.error.code == "judge_timeout" else 502
        return error_response(
            status, "judge_error", f"every judge call failed: {exc.error.message}", code=exc.error.code
        )

    @app.exception_handler(RewardUnavailable)
    async def _unscored(_: Request, exc: RewardUnavailable) -> JSONResponse:
        return error_response(502, "unscored", str(exc), code="unscored")

    @app.exception_handler(EmbedderError)
    async def _embedder(_: Request, exc: EmbedderError) -> JSONResponse:
        return error_response(500, "embedder_error", str(exc), code="embedder_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the service log", code="internal_error")

    async def score_within_limits(request: Request, body: RewardRequest) -> RewardResponse:
        check_limits(body, settings.limits)
        return await request.app.state.pipeline.score(body)

    @app.post("/reward", response_model=RewardResponse, responses=_errors(422, 429, 500, 502, 504))
    async def reward(request: Request, body: RewardRequest) -> RewardResponse:
        """Score a batch of completions; one result per item, in order."""
        return await score_within_limits(request, body)

    @app.post("/openrlhf/get_reward", response_model=OpenRLHFResponse, responses=_errors(422, 429, 500, 502, 504))
    async def openrlhf(request: Request, body: OpenRLHFRequest) -> OpenRLHFResponse:
        """OpenRLHF's remote reward protocol (`--reward.remote_url http://HOST:PORT/openrlhf/get_reward`)."""
        response = await score_within_limits(request, body.to_reward_request())
        return openrlhf_response(response, settings.adapters.fallback)

    @app.post("/slime/reward", response_model=SlimeResponse, responses=_errors(422, 429, 500, 502, 504))
    async def slime(request: Request, body: SlimeRequest) -> SlimeResponse:
        """slime's remote reward protocol (`--rm-type remote_rm --rm-url http://HOST:PORT/slime/reward`)."""
        response = await score_within_limits(request, body.to_reward_request())
        return slime_response(response, settings.adapters.fallback)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", responses=_errors(503))
    async def ready(request: Request) -> JSONResponse:
        """Readiness: the embedder is warm, the micro-batcher alive and a judge replica answers."""
        state = request.app.state
        batcher_alive = hasattr(state, "batcher") and state.batcher.alive
        judge_ok = "accuracy_llm" not in settings.reward.components or await state.judge.reachable()
        if batcher_alive and judge_ok:
            return JSONResponse({"status": "ready"})
        reason = "embedder not running" if not batcher_alive else "no judge replica answers"
        return error_response(503, "not_ready", reason, code="not_ready")

    return app
