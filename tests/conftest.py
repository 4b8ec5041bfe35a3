from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import contextlib
from collections.abc import Callable, Iterator

import pytest
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import ScriptedJudge

from medix_reward.api.app import create_app
from medix_reward.embedding.backends import Encoder, SentenceTransformerEncoder
from medix_reward.settings import EmbedderSettings, Settings
from tests.helpers import MINILM, make_settings


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(EmbedderSettings(model=MINILM, device="cpu"))


@pytest.fixture
def judge() -> Iterator[ScriptedJudge]:
    with ScriptedJudge() as server:
        yield server


@pytest.fixture
def live_service(judge: ScriptedJudge, minilm: SentenceTransformerEncoder) -> Iterator[Callable[..., LiveServer]]:
    """Starts the real app on a loopback port, stopped at teardown: `live_service(**judge_settings)` against the
    test's scripted judge with the real MiniLM, or `live_service(settings=…, encoder=…)` for anything else."""
    with contextlib.ExitStack() as servers:

        def start(*, settings: Settings | None = None, encoder: Encoder | None = None, **judge_settings) -> LiveServer:
            app = create_app(settings or make_settings([judge.url], **judge_settings), encoder=encoder or minilm)
            return servers.enter_context(LiveServer(app))

        yield start


@pytest.fixture
def service(live_service: Callable[..., LiveServer]) -> LiveServer:
    """The app with default test settings against the `judge` fixture."""
    return live_service()
