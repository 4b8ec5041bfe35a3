"""medix-reward as a Ray Serve application: the same FastAPI app (`create_app`) as the ingress of a Serve
deployment, one embedder per replica, Serve's own proxy spreading requests and its autoscaler sizing them.

Settings have one source: the `Settings` model. A replica builds `Settings()` from its environment (the
`runtime_env.env_vars` of deploy/ray/serve.yaml carry the same MEDIX_REWARD_* variables as docker-compose.yml),
overridden by the application's `settings` argument (the nested shape of Settings). Both are validated when the
application is built, so an impossible configuration fails the deploy, not the first request.

Resources, replicas and autoscaling are Serve's deployment options: set them in the config's `deployments:`
section (or as `args.deployment`); the defaults below suit one CPU replica. Each response says which replica
served it (X-Medix-Replica). Shutdown is graceful: Serve stops routing to a replica, waits for its requests in
flight (up to graceful_shutdown_timeout_s), then the app's lifespan stops the micro-batcher and the judge clients.

Calls without HTTP: `score` takes a /reward body (dict) and returns (status, body) through the very same app,
in process, so validation, admission and errors are the HTTP route's (medix_reward_client.ray.ServeHandleClient).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from ray import serve
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medix_reward.api.app import create_app
from medix_reward.settings import Settings

APP_NAME = "medix-reward"
DEPLOYMENT_NAME = "RewardService"
REPLICA_HEADER = "x-medix-replica"

# One replica per CPU-bound encoder process; on a GPU node give each a fraction (e.g. num_gpus: 0.25 puts four
# replicas of a small encoder on one GPU). A replica takes this many requests at once before Serve queues them
# at the proxy; the service's own admission (limits.max_concurrent_requests) still answers 429 beyond its limits.
DEFAULT_DEPLOYMENT: dict[str, Any] = {
    "ray_actor_options": {"num_cpus": 1, "num_gpus": 0},
    "max_ongoing_requests": 64,
    "graceful_shutdown_wait_loop_s": 2,
    "graceful_shutdown_timeout_s": 60,
    "health_check_period_s": 10,
    "health_check_timeout_s": 30,
}


def replica_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment (MEDIX_REWARD_*), each group in `overrides` laid over its own."""
    settings = Settings()
    if not overrides:
        return settings
    merged = settings.model_dump()
    for name, value in overrides.items():
        merged[name] = (
            {**merged[name], **value} if isinstance(value, dict) and isinstance(merged.get(name), dict) else value
        )
    return Settings.model_validate(merged)


class ReplicaHeader:
    """Adds X-Medix-Replica (Serve's replica id) to every response, so a caller can see who served it."""

    def __init__(self, app: ASGIApp, replica: str):
        self.app = app
        self.replica = replica.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (REPLICA_HEADER.encode(), self.replica)]
            await send(message)

        await self.app(scope, receive, tagged)


def replica_app(overrides: dict[str, Any] | None = None) -> FastAPI:
    """The app one replica serves: built in the replica, so each loads its own embedder."""
    app = create_app(replica_settings(overrides))
    app.add_middleware(ReplicaHeader, replica=serve.get_replica_context().replica_id.unique_id)
    return app


@serve.deployment(name=DEPLOYMENT_NAME, **DEFAULT_DEPLOYMENT)
@serve.ingress()  # late-bound: Serve calls __serve_build_asgi_app__ in each replica, then runs its lifespan
class RewardService:
    """The ingress: HTTP goes to the app; `score` is the same /reward route for a deployment handle."""

    def __init__(self, overrides: dict[str, Any] | None = None):
        self._overrides = overrides

    def __serve_build_asgi_app__(self) -> FastAPI:
        return replica_app(self._overrides)

    async def score(self, body: dict[str, Any]) -> tuple[int, Any]:
        """A /reward body in, (status, JSON body) out, through the app in process: validation, admission and
        errors are the route's."""
        app: ASGIApp = self.app  # type: ignore[attr-defined]  # Serve's ASGI wrapper holds the built app
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            reply = await client.post("/reward", json=body)
        return reply.status_code, reply.json()


def build(args: dict[str, Any]) -> serve.Application:
    """The application builder that `serve run` / `serve deploy` call (`import_path: medix_reward.ray_serve:build`).

    args.settings: overrides of the settings (nested, as Settings); args.deployment: Serve deployment options
    laid over DEFAULT_DEPLOYMENT (a config file's `deployments:` section overrides both)."""
    overrides: dict[str, Any] = dict(args.get("settings") or {})
    replica_settings(overrides)  # refuse an impossible configuration now, at deploy time
    return RewardService.options(**(args.get("deployment") or {})).bind(overrides)


def check_config(path: Path) -> list[Settings]:
    """A Serve config file as `serve run` / `serve deploy` will read it: Ray's own schema, and for each of our
    applications the Settings its runtime_env variables and args make (ValueError if any is impossible)."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    checked = []
    for app in config.applications:
        if app.import_path != f"{__name__}:build":
            continue
        env = (app.runtime_env or {}).get("env_vars", {})
        saved = {name: os.environ.get(name) for name in env}
        try:
            os.environ.update(env)
            checked.append(replica_settings((app.args or {}).get("settings")))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    if not checked:
        raise ValueError(f"{path}: no application imports {__name__}:build")
    return checked
