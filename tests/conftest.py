from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import ScriptedJudge

from medix_reward.api.app import create_app
from medix_reward.embedding.backends import Encoder, SentenceTransformerEncoder
from medix_reward.settings import EmbedderSettings, Settings
from tests.helpers import MINILM, make_settings, with_settings


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(EmbedderSettings(model=MINILM, device="cpu"))


@pytest.fixture
def judge() -> Iterator[ScriptedJudge]:
    with ScriptedJudge() as server:
        yield server


@pytest.fixture
def live_service(request: pytest.FixtureRequest) -> Iterator[Callable[..., LiveServer]]:
    """The one way a test starts the service: the real app on a loopback port, stopped at teardown (or earlier by
    `server.__exit__()`), as many as the test asks for.

    `live_service(**update)`: test settings (make_settings) against the `judge` fixture, with `update` applied
    through validation (`live_service(judge={"max_retries": 0}, limits={"max_items": 3})`); `settings=` instead:
    those settings, whole. `encoder=`: the encoder (default the real MiniLM); `port=`: a given port;
    `server=`: uvicorn options (connections.server_options). The judge and MiniLM start only when used."""
    with contextlib.ExitStack() as servers:

        def start(
            settings: Settings | None = None,
            *,
            encoder: Encoder | None = None,
            port: int = 0,
            server: Mapping[str, Any] | None = None,
            **update: object,
        ) -> LiveServer:
            if settings is None:
                settings = make_settings([request.getfixturevalue("judge").url], **update)
            elif update:
                settings = with_settings(settings, **update)
            app = create_app(settings, encoder=encoder or request.getfixturevalue("minilm"))
            return servers.enter_context(LiveServer(app, port, **(server or {})))

        yield start


@pytest.fixture
def service(live_service: Callable[..., LiveServer]) -> LiveServer:
    """The app with default test settings against the `judge` fixture."""
    return live_service()
