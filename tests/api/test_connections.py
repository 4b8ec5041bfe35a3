"""Connection-level limits (connections.py, admission.BodyTimeout) on a real loopback server: connections that
send nothing, half a head, or a body that trickles are closed within the configured times, and a crowd of idle
connections past `max_connections` leaves new clients served (issue 24). Every wait is bounded by a socket
timeout far above the configured one."""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest
from medix_reward_tools.live import LiveServer

from medix_reward.api.connections import server_options
from medix_reward.settings import LimitsSettings
from tests.helpers import CharEncoder

LIMITS = LimitsSettings(header_timeout_s=0.5, max_connections=50, body_timeout_s=5.0, body_deadline_s=1.0)
BOUND_S = 15.0  # a socket wait this long means the server never closed it
SLACK_S = 5.0  # a timer's lateness on a loaded 2-core machine, generously


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
    started = time.monotonic()  # before the server's clock for this connection starts
    with connect(server) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock) == b""
        waited = time.monotonic() - started
    # Closed by the head timeout (0.5 s), not at once (the server's clock starts a little after ours), and within
    # it plus a loaded machine's delay; a server without the timeout never closes it (recv waits out BOUND_S).
    assert 0.8 * LIMITS.header_timeout_s <= waited < LIMITS.header_timeout_s + SLACK_S, waited


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


# -- the finding at full size: 20,000 idle connections from two clients, against `medix-reward serve` ----------

# Each client is a process of its own holding half the crowd: a process may hold RLIMIT_NOFILE descriptors, and
# this machine's hard limit is 20,000, so one process could not hold 20,000 connections (the run used two
# clients of ~10,000 too). Each raises its soft limit to the hard one.
_CROWD = """
import resource, selectors, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, n = int(sys.argv[1]), int(sys.argv[2])
selector, connected, held = selectors.DefaultSelector(), 0, []
for _ in range(n):
    sock = socket.socket()
    held.append(sock)
    sock.setblocking(False)
    sock.connect_ex(("127.0.0.1", port))
    selector.register(sock, selectors.EVENT_WRITE)
deadline = time.monotonic() + 120
while selector.get_map() and time.monotonic() < deadline:
    for key, _ in selector.select(timeout=1):
        selector.unregister(key.fileobj)
        connected += key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
print(hard, connected, flush=True)
sys.stdin.read()  # holds every socket, sending nothing, until the test closes stdin
"""


SERVICE_NOFILE = 10_000


def test_20000_idle_connections_leave_new_clients_served(judge):
    import resource
    import subprocess
    import sys

    from medix_reward_tools.soak import served

    with served(judge) as (url, pid):  # default limits: max_connections 4096
        # The crowd is twice what the service may hold (its descriptors, set on the running process), as it was
        # in the run: past that, accept() fails and new clients wait behind the crowd for ever.
        _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (SERVICE_NOFILE, hard))
        port = int(url.rsplit(":", 1)[1])
        crowd = [
            subprocess.Popen([sys.executable, "-c", _CROWD, str(port), "10000"], stdin=subprocess.PIPE, text=True,
                             stdout=subprocess.PIPE)
            for _ in range(2)
        ]  # fmt: skip
        try:
            reports = [client.stdout.readline().split() for client in crowd]  # type: ignore[union-attr]
            print(f"\nRLIMIT_NOFILE hard limits {[r[0] for r in reports]}; connected {[r[1] for r in reports]}")
            assert sum(int(r[1]) for r in reports) == 20_000  # every one was accepted at some point
            with httpx.Client(base_url=url, timeout=BOUND_S) as client:  # each new client, a new connection
                for _ in range(8):
                    assert client.get("/health", headers={"connection": "close"}).status_code == 200
                body = {"items": [{"response": "<X_RAY> <thinking>r</thinking> <answer>Mass</answer>",
                                   "ground_truth": "<X_RAY> Big mass"}]}  # fmt: skip
                assert client.post("/reward", json=body).status_code == 200
            held = len(os.listdir(f"/proc/{pid}/fd"))
            assert held < LimitsSettings().max_connections + 200, held  # the cap, plus the service's own files
        finally:
            for client in crowd:
                client.stdin.close()  # type: ignore[union-attr]
                client.wait(timeout=60)
