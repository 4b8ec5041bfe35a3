"""Connection-level limits, for uvicorn's h11 server: connections that never send a complete request head
cannot pile up and lock everyone else out.

uvicorn bounds only the idle time after a response (`timeout_keep_alive`), and any byte received cancels even
that; a connection that sends nothing, or half a head, is kept for ever (with uvicorn alone, 20,000 idle
connections from two clients made every new request fail for ~70 s; 0 of 100 half-open ones closed after 95 s). Here:

- **head timeout**: a request head must be complete `header_timeout_s` after the connection opens, or after
  its first byte on a kept-alive connection (before that byte, uvicorn's `timeout_keep_alive` applies);
- **connection cap**: past `max_connections`, each new connection closes the connection that has waited
  longest without a request in progress (never one whose request is being served), so idle connections
  cannot crowd out new clients;
- a body that arrives too slowly is the app's to bound (`admission.BodyTimeout`: per part and in all).

Why a subclass of uvicorn's own protocol rather than another server: it is the server the service and its
tests already run; hypercorn or a proxy in front (nginx `client_header_timeout`) would do it too, and the
proxy remains the choice for TLS. The state is per server (the factory's closure), not global.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from medix_reward.settings import LimitsSettings


def guarded_h11(header_timeout_s: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a head timeout and a connection cap (see the module's doc)."""
    waiting: OrderedDict[GuardedH11, None] = OrderedDict()  # connections without a request, oldest first

    class GuardedH11(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head(now=True)
            while len(self.connections) > max_connections and waiting:
                oldest = next(iter(waiting))
                if oldest is self:
                    break
                oldest._close()

        def data_received(self, data: bytes) -> None:
            if self._head_timer is None and self.conn.their_state is h11.IDLE:
                self._await_head(now=True)  # the first byte of a head on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._head_received()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_head(now=False)

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_received()
            super().connection_lost(exc)

        def _await_head(self, *, now: bool) -> None:
            """Waiting for a request: evictable, and (`now`) timed from this moment."""
            if self.conn.their_state is not h11.IDLE:
                return  # a pipelined request is already being read
            waiting[self] = None
            if now and self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout_s, self._close)

        def _head_received(self) -> None:
            waiting.pop(self, None)
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _close(self) -> None:
            self._head_received()
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedH11


def server_options(limits: LimitsSettings) -> dict[str, Any]:
    """uvicorn options for the service: the guarded protocol, and the idle keep-alive bound."""
    return {
        "http": guarded_h11(limits.header_timeout_s, limits.max_connections),
        # Keep idle connections longer than clients do (httpx: 5 s), so a client never sends on a connection
        # the server is closing (seen in a soak as a ReadError with equal timeouts).
        "timeout_keep_alive": limits.keep_alive_s,
    }
