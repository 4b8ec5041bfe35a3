"""The app factory: it only wires. Routes are in `routes.py`, errors in `errors.py`, limits in
`admission.py`, the scoring I/O in `pipeline.py` and the scoring rule in `rules.py`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from medix_reward import __version__
from medix_reward.api.admission import Admission, BodySizeLimit, BodyTimeout, KeyCheck
from medix_reward.api.errors import install_error_handlers
from medix_reward.api.metrics import Metrics
from medix_reward.api.observability import RequestContext
from medix_reward.api.routes import PROTECTED_PATHS, operations, scoring
from medix_reward.api.telemetry import RewardTelemetry
from medix_reward.embedding.backends import Encoder
from medix_reward.judge.http import JudgeTransport
from medix_reward.memory import release_when_idle
from medix_reward.scoring.pipeline import open_pipeline
from medix_reward.settings import Settings

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def create_app(
    settings: Settings | None = None,
    *,
    encoder: Encoder | None = None,
    judge_transport: JudgeTransport | None = None,
) -> FastAPI:
    """Build the service. Tests inject a fake encoder or judge transport; production loads both from settings."""
    settings = settings or Settings()
    metrics = Metrics()
    telemetry = RewardTelemetry(settings.telemetry, metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.auth.keys and settings.host not in _LOOPBACK:
            log.warning("listening on %s with no API keys: anyone who reaches it can use it", settings.host)
        # On exit uvicorn has stopped accepting and finished in-flight requests.
        async with open_pipeline(
            settings, encoder=encoder, judge_transport=judge_transport, metrics=metrics, telemetry=telemetry
        ) as pipe:
            app.state.pipeline = pipe
            admission = app.state.admission
            releaser = asyncio.create_task(
                release_when_idle(lambda: admission.inflight_requests > 0, lambda: admission.admitted_items)
            )
            log.info("medix-reward %s ready on embedder %s", __version__, settings.embedder.model)
            try:
                yield
            finally:
                releaser.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await releaser

    app = FastAPI(
        title="medix-reward",
        version=__version__,
        description="The MediX-R1 composite reward for RL trainers: batched, concurrent, explicit about failure.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.telemetry = telemetry
    app.state.admission = Admission(settings.limits, metrics)
    # The last added runs first: ids and metrics, then the key, then the body size and its pace, then the app.
    app.add_middleware(
        BodyTimeout, timeout_s=settings.limits.body_timeout_s, deadline_s=settings.limits.body_deadline_s
    )
    app.add_middleware(BodySizeLimit, limit=settings.limits.max_body_bytes)
    app.add_middleware(KeyCheck, keys=settings.auth.keys, protected=PROTECTED_PATHS)
    app.add_middleware(RequestContext, metrics=metrics)
    install_error_handlers(app)
    app.include_router(scoring)
    app.include_router(operations)
    return app


def openapi_yaml() -> str:
    """The OpenAPI document of the app on default settings, as checked in (`openapi.yaml`)."""
    import yaml

    return yaml.safe_dump(create_app(Settings()).openapi(), sort_keys=False, allow_unicode=True)
