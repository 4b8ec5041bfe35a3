"""The judge's HTTP: one keep-alive aiohttp session, behind a two-method seam that JudgeClient sees.

aiohttp, not httpx: at 64 calls in flight the service's httpx clients spent ~2 ms of CPU per judge call on
this project's CPU against 0.25-0.47 ms here (`make bench`, "judge client CPU per call"). That CPU is taken
from the encoder on a CPU node, and it caps how many calls per second one process can drive to GPU judges.
What a call can end in is all JudgeClient needs: a `JudgeReply`, or `JudgeTimeout` / `JudgeUnreachable`;
statuses, retries, Retry-After, replicas and limits stay in client.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import aiohttp

from medix_reward.judge.types import JudgeReply


class JudgeTimeout(Exception):
    """No complete reply within the attempt's timeout."""


class JudgeUnreachable(Exception):
    """The connection could not be made, or broke before a complete reply."""


class JudgeTransport(Protocol):
    async def send(
        self, method: str, url: str, *, body: object | None, headers: Mapping[str, str], timeout_s: float
    ) -> JudgeReply: ...

    async def aclose(self) -> None: ...


# Connections beyond the calls in flight, for readiness probes (GET /models): with every call slot busy on a
# slow judge, a probe queued behind them timed out and /ready said the judge was gone (tested).
_PROBE_CONNECTIONS = 2


class AiohttpTransport:
    """A pool of keep-alive connections shared by every replica: `connections` for calls, and a few for
    probes. Open it inside the running event loop (aiohttp binds a session to it)."""

    def __init__(self, connections: int):
        # No trust_env: judges are reached directly, not through HTTP(S)_PROXY. aiohttp would look the proxy
        # and netrc up in a thread on every request, which doubled the CPU per call (profiled).
        connector = aiohttp.TCPConnector(limit=connections + _PROBE_CONNECTIONS)
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False, raise_for_status=False)

    async def send(
        self, method: str, url: str, *, body: object | None, headers: Mapping[str, str], timeout_s: float
    ) -> JudgeReply:
        try:
            async with self._session.request(
                method, url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                return JudgeReply(response.status, response.headers, await response.read())
        except TimeoutError as exc:  # before ClientError: aiohttp's own timeout errors are both
            raise JudgeTimeout(f"no reply within {timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:  # refused, reset, closed mid-reply, bad framing
            raise JudgeUnreachable(type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self._session.close()
