"""Scoring from inside a Ray cluster through a Serve deployment handle: no HTTP, no proxy hop.

The same request building, retry decision and response parsing as `RewardClient` (`_core.py`); the replica
runs the body through the very same /reward route in process (`medix_reward.ray_serve.RewardService.score`),
so validation, errors and results are those of HTTP. Needs `ray[serve]` where it runs; ray is imported only
when a client is made, so the package still imports without it.

    client = ServeHandleClient("ray://medix-reward")   # the application's name in the Serve config
    response = client.score(items)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from medix_reward_client._core import (
    ClientConfig,
    ItemLike,
    after_attempt,
    chunk_bodies,
    merge,
    new_request_id,
    to_items,
)
from medix_reward_client.client import Options
from medix_reward_client.schema import RewardResponse

SCHEME = "ray://"
DEPLOYMENT = "RewardService"


def is_serve_target(url: str | None) -> bool:
    return url is not None and url.startswith(SCHEME)


class ServeHandleClient:
    """`RewardClient`'s `score`, sent through `serve.get_deployment_handle`. target: 'ray://APP' (APP: the
    Serve application's name). A replica that died mid-call (Ray raises) or a retryable status is retried as
    over HTTP: at most `max_retries` retries within `retry_budget_s`."""

    def __init__(
        self,
        target: str = f"{SCHEME}medix-reward",
        *,
        max_retries: int | None = 3,
        retry_budget_s: float | None = None,
        chunk_size: int = 1024,
        handle: Any = None,
    ):
        if not is_serve_target(target):
            raise ValueError(f"a Serve target is '{SCHEME}APP_NAME', not {target!r}")
        app_name = target.removeprefix(SCHEME).strip("/")
        self.config = ClientConfig.build(target, None, 0.0, max_retries, chunk_size, 1, retry_budget_s)
        if handle is None:
            from ray import serve

            handle = serve.get_deployment_handle(DEPLOYMENT, app_name=app_name)
        self._handle = handle
        self._sleep = time.sleep
        self._clock = time.monotonic

    def score(self, items: Iterable[ItemLike], options: Options = None) -> RewardResponse:
        bodies = chunk_bodies(to_items(items), options, self.config.chunk_size)
        return merge([self._send(body) for body in bodies])

    def _send(self, body: dict[str, Any]) -> RewardResponse:
        request_id, attempt, started = new_request_id(), 0, self._clock()
        while True:
            try:
                status, reply = self._handle.score.remote(body).result()
            except Exception as exc:
                outcome = after_attempt(self.config, attempt, request_id, elapsed=self._clock() - started, error=exc)
            else:
                outcome = after_attempt(
                    self.config, attempt, request_id, elapsed=self._clock() - started, status=status, body=reply
                )
            if isinstance(outcome, RewardResponse):
                return outcome
            self._sleep(outcome)
            attempt += 1
