"""A real HTTP server in process: how the tests, the benchmark and the scripted judge serve an app."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from medix_reward_tools.common import bind_loopback, wait_for


class LiveServer:
    """An ASGI app served by uvicorn on a loopback port (0: any free one), lifespan and all, on its own thread."""

    def __init__(self, app: ASGIApp, port: int = 0, **config: Any):
        sock = bind_loopback(port)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options = {"log_level": "warning", "timeout_keep_alive": 30, "timeout_graceful_shutdown": 2, **config}
        self._server = uvicorn.Server(uvicorn.Config(app, **options))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        server = self._server
        wait_for(lambda: server.started, what="the service", timeout_s=60, interval_s=0.01, alive=self._thread.is_alive)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


Handler = Callable[[Request], Awaitable[Response]]


class LoopbackJudge:
    """An OpenAI-compatible judge of the tests' own on a loopback port: its chat completions and model list.
    `with Judge() as judge: judge.url`."""

    port: int = 0
    _live: LiveServer

    def _serve(self, chat: Handler, models: Handler, port: int) -> None:
        app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                                Route("/v1/models", models, methods=["GET"])])  # fmt: skip
        self._live = LiveServer(app, port, lifespan="off", backlog=4096, timeout_graceful_shutdown=1).__enter__()
        self.port = self._live.port

    def start(self, port: int = 0) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        self._live.__exit__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
