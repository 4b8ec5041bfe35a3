"""A real local Ray cluster (the README's commands): a head and more nodes, each a `ray start --block` process
started here in a session of its own and ended by that session's id, never by a name; Serve's proxy on a free
loopback port. Used by the Ray test tier and the replica benchmark. Needs the ray extra."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import serve

from medix_reward_tools.common import free_port, wait_for

RAY = str(Path(sys.executable).with_name("ray"))


# How often replicas and handles report ongoing requests to the autoscaler (Ray's default: 10 s): fast enough
# for a test to see 1 → 2 → 1 within a minute or two.
_FAST_AUTOSCALING = {
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
}


@dataclass
class RayCluster:
    address: str
    http_url: str
    nodes: list[subprocess.Popen[bytes]]


def _start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _end_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_for_nodes(count: int, nodes: list[subprocess.Popen[bytes]], timeout_s: float = 300) -> None:
    wait_for(
        lambda: len([n for n in ray.nodes() if n["Alive"]]) >= count, what=f"a Ray cluster of {count} nodes",
        timeout_s=timeout_s, interval_s=0.5, alive=lambda: all(node.poll() is None for node in nodes),
    )  # fmt: skip


@contextlib.contextmanager
def local_cluster(cpus_per_node: tuple[int, ...] = (2, 2)) -> Iterator[RayCluster]:
    """A head with cpus_per_node[0] logical CPUs and one more node per further entry, on 127.0.0.1; this
    process connected as the driver and Serve started. Everything is stopped on exit."""
    # A short temp dir: Ray's socket paths must stay under the 107-byte limit of AF_UNIX.
    temp = Path(tempfile.mkdtemp(prefix="mr-ray-", dir="/tmp"))
    port = free_port()
    # Ray 2.60 turns token authentication on for a new cluster, but a driver given an address reads its auth mode
    # when ray is imported: this throwaway cluster on 127.0.0.1 runs without (its GCS and raylets still bind every
    # interface: Ray has no loopback-only option). A real cluster keeps Ray's default and shares its token.
    # Requests all enter through the head's proxy here, and a proxy prefers replicas on its own node while they are
    # below max_ongoing_requests: with that, a replica on the second node got none of 16 requests in one CI run.
    # A real cluster spreads requests over every node's proxy (a load balancer); this one asks its one proxy to.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
           **_FAST_AUTOSCALING}  # fmt: skip
    head, *others = cpus_per_node
    head_args = [f"--port={port}", "--node-ip-address=127.0.0.1", f"--num-cpus={head}", "--include-dashboard=false",
                 f"--temp-dir={temp}"]  # fmt: skip
    nodes = [_start_node(["--head", *head_args], env, temp / "head.log")]
    address = f"127.0.0.1:{port}"
    try:
        try:  # a cold start on two busy cores takes tens of seconds
            wait_for(
                lambda: "Ray runtime started" in (temp / "head.log").read_text(errors="replace"), what="the Ray head",
                timeout_s=300, interval_s=0.5, alive=lambda: nodes[0].poll() is None,
            )  # fmt: skip
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"the Ray head did not start: {(temp / 'head.log').read_text()[-2000:]}") from exc
        for n, cpus in enumerate(others):
            args = [f"--address={address}", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}"]
            nodes.append(_start_node(args, env, temp / f"node-{n}.log"))
        ray.init(address=address, logging_level="warning", log_to_driver=False)
        _wait_for_nodes(len(nodes), nodes)
        http_port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        yield RayCluster(address, f"http://127.0.0.1:{http_port}", nodes)
    finally:
        if ray.is_initialized():
            try:
                serve.shutdown()
            finally:
                ray.shutdown()
        for node in reversed(nodes):  # each node's processes are in the session its `ray start` opened
            _end_group(node.pid, signal.SIGTERM)
        for node in nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=30)
            _end_group(node.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
