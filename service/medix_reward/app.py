"""The HTTP app: thin routes over RewardPipeline, one error body for every failure."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from medix_reward import __version__
from medix_reward.checks import split_ground_truth
from medix_reward.embedder import EmbedderError, EmbeddingCache, Encoder, MicroBatcher, SentenceTransformerEncoder
from medix_reward.judge import PROMPT_VERSION, JudgeClient, judge_http_clients
from medix_reward.metrics import Metrics
from medix_reward.observability import BodySizeLimit, RequestContext
from medix_reward.pipeline import JudgeDown, Overloaded, RewardPipeline
from medix_reward.protocols import (
    OpenRLHFRequest,
    OpenRLHFResponse,
    SlimeRequest,
    SlimeResponse,
    openrlhf_response,
    slime_response,
)
from medix_reward.settings import LimitsSettings, Settings, config_hash, public_config
from medix_reward_client.adapters._common import RewardUnavailable
from medix_reward_client.schema import ErrorBody, RewardRequest, RewardResponse

log = logging.getLogger(__name__)

_MAX_MESSAGE_CHARS = 500


class ClientGone(Exception):
    """The caller disconnected; its work was cancelled."""


class Unauthorized(Exception):
    pass


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
    return out or "body"


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


_bearer = HTTPBearer(auto_error=False, description="One of MEDIX_REWARD_AUTH__KEYS, when keys are set")


async def require_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    keys = request.app.state.settings.auth.keys
    if not keys:
        return
    given = (credentials.credentials if credentials else "").encode()
    # Compare with every key, in constant time, so timing says nothing about which or how much matched.
    matches = [hmac.compare_digest(given, key.get_secret_value().encode()) for key in keys]
    if not any(matches):
        raise Unauthorized()


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "The body is not valid JSON",
        401: "Missing or wrong bearer token",
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
    metrics = Metrics()
    fingerprint = config_hash(settings)

    def observe_batch(size: int, waits: list[float], inference_s: float) -> None:
        metrics.embed_batch_size.observe(size)
        metrics.embed_inference_seconds.observe(inference_s)
        for wait in waits:
            metrics.embed_queue_seconds.observe(wait)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.auth.keys and settings.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("listening on %s with no API keys: anyone who reaches it can use it", settings.host)
        model = encoder or await asyncio.to_thread(SentenceTransformerEncoder, settings.embedder)
        batcher = MicroBatcher(
            model, settings.embedder.max_batch_size, settings.embedder.max_wait_ms / 1000, observe_batch
        )
        batcher.start()
        # Warm up on the encoder's own worker thread: torch sets up its thread pool per calling thread.
        await batcher.embed(["warm-up"])
        http = judge_http_clients(settings.judge, judge_transport)
        try:
            app.state.batcher = batcher
            app.state.judge = JudgeClient(settings.judge, http)
            app.state.pipeline = RewardPipeline(
                settings.reward,
                settings.limits,
                app.state.judge,
                EmbeddingCache(batcher, settings.embedder.cache_size),
                metrics,
            )
            log.info("medix-reward %s ready on embedder %s", __version__, settings.embedder.model)
            yield
        finally:
            # uvicorn has stopped accepting and finished in-flight requests before this runs.
            await batcher.stop()
            await asyncio.gather(*(client.aclose() for client in http))

    app = FastAPI(
        title="medix-reward",
        version=__version__,
        description="The MediX-R1 composite reward for RL trainers: batched, concurrent, explicit about failure.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.add_middleware(BodySizeLimit, limit=settings.limits.max_body_bytes)
    app.add_middleware(RequestContext, metrics=metrics)

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

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return error_response(
            401, "unauthorized", "missing or wrong bearer token", code="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, exc: ClientGone) -> JSONResponse:
        return error_response(499, "cancelled", "the client disconnected", code="client_disconnected")

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
        work = asyncio.ensure_future(request.app.state.pipeline.score(body))
        gone = asyncio.ensure_future(_disconnected(request))
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():  # nobody is waiting for these rewards any more: stop the judge calls
            work.cancel()
            metrics.cancelled.inc()
            raise ClientGone()
        gone.cancel()
        response = work.result()
        response.version, response.config_hash = __version__, fingerprint
        return response

    scoring = {"dependencies": [Depends(require_key)], "responses": _errors(400, 401, 413, 422, 429, 500, 502, 504)}

    @app.post("/reward", response_model=RewardResponse, **scoring)
    async def reward(request: Request, body: RewardRequest) -> RewardResponse:
        """Score a batch of completions; one result per item, in order."""
        return await score_within_limits(request, body)

    def tagged_labels(body: OpenRLHFRequest | SlimeRequest) -> RewardRequest:
        """These protocols need a float per sample, so a label that cannot give one is the caller's error."""
        reward_request = body.to_reward_request()
        if "modality" in settings.reward.components:
            for i, item in enumerate(reward_request.items):
                if split_ground_truth(item.ground_truth or "")[0] is None:
                    message = "has no '<TAG>' for the modality component (or disable the component)"
                    raise InvalidField(body.label_field(i), message, "no_true_modality")
        return reward_request

    @app.post("/openrlhf/get_reward", response_model=OpenRLHFResponse, **scoring)
    async def openrlhf(request: Request, body: OpenRLHFRequest) -> OpenRLHFResponse:
        """OpenRLHF's remote reward protocol (`--reward.remote_url http://HOST:PORT/openrlhf/get_reward`)."""
        response = await score_within_limits(request, tagged_labels(body))
        _count_fallbacks(metrics, "openrlhf", response, settings)
        return openrlhf_response(response, settings.adapters.fallback)

    @app.post("/slime/reward", response_model=SlimeResponse, **scoring)
    async def slime(request: Request, body: SlimeRequest) -> SlimeResponse:
        """slime's remote reward protocol (`--rm-type remote_rm --rm-url http://HOST:PORT/slime/reward`)."""
        response = await score_within_limits(request, tagged_labels(body))
        _count_fallbacks(metrics, "slime", response, settings)
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

    @app.get("/metrics", response_class=Response)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus exposition of the service's metrics."""
        if hasattr(request.app.state, "batcher"):
            metrics.embed_queue_depth.set(request.app.state.batcher.queued)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/config", dependencies=[Depends(require_key)], responses=_errors(401))
    async def config() -> dict[str, Any]:
        """The effective configuration (secrets redacted) and its hash, as carried by every /reward response."""
        return {"version": __version__, "config_hash": fingerprint, "prompt_version": PROMPT_VERSION,
                "settings": public_config(settings)}  # fmt: skip

    return app


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body has been read, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _count_fallbacks(metrics: Metrics, route: str, response: RewardResponse, settings: Settings) -> None:
    if settings.adapters.fallback is not None:
        unscored = sum(result.overall is None for result in response.results)
        if unscored:
            metrics.fallbacks.labels(route).inc(unscored)
