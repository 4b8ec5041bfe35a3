"""Connection-level limits (connections.py, admission.BodyTimeout) on a real loopback server: connections that
send nothing, half a head, or a body that trickles are closed within the configured times, and a crowd of idle
connections past `max_connections` leaves new clients served (issue 24). Every wait is bounded by a socket
timeout far above the configured one."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from medix_reward.connections import server_options
from medix_reward.devtools.live import LiveServer
from medix_reward.settings import LimitsSettings
from tests.helpers import CharEncoder

LIMITS = LimitsSettings(header_timeout_s=0.5, max_connections=50, body_timeout_s=5.0, body_deadline_s=1.0)
BOUND_S = 15.0  # a socket wait this long means the server never closed it


@pytest.fixture
def server(live_service) -> LiveServer:
    return live_service(limits=LIMITS, server=server_options(LIMITS), encoder=CharEncoder())


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(BOUND_S)
    return sock


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (raises socket.timeout if it never does)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize("sent", [b"", b"POST /reward HTTP/1.1\r\nHost: x\r\n", b"G"], ids=["nothing", "half", "byte"])
def test_a_connection_without_a_complete_head_is_closed(server, sent):
    with connect(server) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock) == b""  # within BOUND_S, or the socket's timeout fails the test


def test_a_kept_alive_connection_sending_half_a_head_is_closed(server):
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in sock.recv(65536)
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # and never the rest
        assert closed_by_server(sock) == b""


def test_a_body_that_trickles_is_408_within_the_deadline(server):
    with connect(server) as sock:
        sock.sendall(
            b"POST /reward HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        reply = b""
        for _ in range(200):  # a byte every 0.05 s: each part arrives well within body_timeout_s (5 s)
            try:
                sock.sendall(b" ")
            except OSError:
                break
            sock.settimeout(0.05)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            reply += chunk
            if not chunk or b"\r\n\r\n" in reply:
                break
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"did not arrive within 1 s" in reply


def test_idle_connections_past_the_cap_leave_new_clients_served(server):
    idle = [connect(server) for _ in range(500)]  # ten times max_connections, sending nothing
    try:
        with httpx.Client(base_url=server.url, timeout=BOUND_S) as client:
            for _ in range(5):
                assert client.get("/health").status_code == 200
        # The crowd was thinned as it came: all but the newest max_connections were closed at once.
        for sock in idle:
            sock.settimeout(0.001)
        still_open = 0
        for sock in idle:
            try:
                still_open += sock.recv(1) != b""
            except TimeoutError:
                still_open += 1
            except OSError:
                pass
        assert still_open <= LIMITS.max_connections
    finally:
        for sock in idle:
            sock.close()


def test_an_idle_kept_alive_connection_is_reused_past_the_head_timeout(server):
    with connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in sock.recv(65536)
            time.sleep(1.0)  # idle for twice the head timeout, well within keep_alive_s: the connection stays
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in sock.recv(65536)
