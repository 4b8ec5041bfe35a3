"""The shared verdict cache against a real redis-server: what one service judged, another (or the same one after a
restart) does not judge again; Redis dying or hanging mid-load costs hits, never requests."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from medix_reward_tools.common import bind_loopback, distinct_items, grpo_batch
from medix_reward_tools.scripted_judge import ScriptedJudge

from medix_reward.settings import CacheSettings, Settings
from medix_reward_client import RewardClient
from tests.helpers import RedisServer, make_settings

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


def cached_settings(judge: ScriptedJudge, redis_url: str, **cache: object) -> Settings:
    """A generous command timeout (a loaded CI machine), unless the test is about timeouts."""
    return make_settings([judge.url], cache={"redis_url": redis_url, "timeout_s": 2.0, **cache})


def metric(base_url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base_url}/metrics").text
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(selector)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def scores(response: dict) -> list[dict]:
    return [result["scores"] for result in response["results"]]


def test_a_verdict_judged_by_one_service_is_a_hit_on_another_and_after_a_restart(
    live_service, judge: ScriptedJudge, redis_server: RedisServer
):
    settings = cached_settings(judge, redis_server.url)
    body = {"items": grpo_batch(prompts=3, group=8)}
    a, b = live_service(settings), live_service(settings)
    first = httpx.post(f"{a.url}/reward", json=body).json()
    pairs = first["usage"]["judge_pairs"]
    assert pairs > 0 and len(judge.calls) == first["usage"]["judge_calls"] == pairs

    second = httpx.post(f"{b.url}/reward", json=body).json()
    assert len(judge.calls) == pairs, "service B asked the judge again"
    assert second["usage"]["judge_calls"] == 0 and second["usage"]["judge_cache_hits"] == pairs
    assert scores(second) == scores(first)
    assert metric(b.url, "medix_reward_shared_cache_lookups_total", result="hit") == pairs
    assert metric(a.url, "medix_reward_shared_cache_lookups_total", result="miss") == pairs
    a.__exit__()
    b.__exit__()

    restarted = live_service(settings)
    third = httpx.post(f"{restarted.url}/reward", json=body).json()
    assert len(judge.calls) == pairs and third["usage"]["judge_cache_hits"] == pairs
    assert scores(third) == scores(first)


def test_keys_separate_judge_models_and_prompts(live_service, judge: ScriptedJudge, redis_server: RedisServer):
    """A verdict is shared only with a service that would have asked the same judge the same question."""
    body = {"items": distinct_items(4)}
    reference = cached_settings(judge, redis_server.url)
    a, b = live_service(reference), live_service(reference, judge={"model": "another-judge"})
    httpx.post(f"{a.url}/reward", json=body).raise_for_status()
    httpx.post(f"{b.url}/reward", json=body).raise_for_status()
    assert len(judge.calls) == 8
    hardened = {**body, "options": {"preset": "hardened"}}  # medix-judge-v2: another prompt, other keys
    assert httpx.post(f"{a.url}/reward", json=hardened).json()["usage"]["judge_calls"] > 0


def test_redis_killed_mid_load_loses_no_request(live_service, judge: ScriptedJudge, redis_server: RedisServer):
    settings = cached_settings(judge, redis_server.url, retry_s=0.2)
    batches = [distinct_items(8 * (n + 1))[8 * n :] for n in range(24)]  # each request: 8 pairs of its own
    done, killed = threading.Event(), threading.Event()
    finished = 0
    lock = threading.Lock()

    service = live_service(settings)
    with RewardClient(service.url) as client:

        def score(items: list[dict]) -> list[float | None]:
            nonlocal finished
            response = client.score(items)
            with lock:
                finished += 1
                if finished == 6:
                    done.set()
            return [result.overall for result in response.results]

        def kill_when_load_is_under_way() -> None:
            done.wait(timeout=60)
            redis_server.kill()
            killed.set()

        killer = threading.Thread(target=kill_when_load_is_under_way)
        killer.start()
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(score, batches))
        killer.join()

        assert killed.is_set()
        assert all(overall is not None for batch in results for overall in batch)
        assert [len(batch) for batch in results] == [8] * 24
        assert (
            metric(service.url, "medix_reward_shared_cache_errors_total", op="get")
            + metric(service.url, "medix_reward_shared_cache_errors_total", op="set")
            >= 1
        )
        assert httpx.get(f"{service.url}/ready").status_code == 200  # a cache is not a dependency

        # Redis back (empty): once retry_s has passed the service stores verdicts again (over a new connection:
        # the old ones died with the server), and another service reads them.
        redis_server.start()
        stored = False
        for attempt in range(20):  # each round: 10 new pairs; the first may still meet a dead connection
            time.sleep(settings.cache.retry_s * 2)
            fresh = distinct_items(400)[200 + 10 * attempt : 210 + 10 * attempt]
            before = redis_server.keys()
            client.score(fresh)
            stored = redis_server.keys() - before == 10
            if stored:
                break
        assert stored, "the service never stored a whole request's verdicts in Redis again"
    other = live_service(settings)
    calls = len(judge.calls)
    probe = httpx.post(f"{other.url}/reward", json={"items": fresh}).json()
    assert probe["usage"]["judge_cache_hits"] == 10 and len(judge.calls) == calls


def test_a_redis_that_never_answers_times_out_and_scoring_goes_on(live_service, judge: ScriptedJudge):
    """A listener that accepts and never replies (a hung Redis): each command gives up after timeout_s."""
    with bind_loopback() as sock:
        sock.listen(64)
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            sock.settimeout(0.1)
            while not stop.is_set():
                try:
                    accepted.append(sock.accept()[0])
                except TimeoutError:
                    continue

        acceptor = threading.Thread(target=accept)
        acceptor.start()
        port = sock.getsockname()[1]
        settings = cached_settings(judge, f"redis://127.0.0.1:{port}/0", timeout_s=0.05, retry_s=60)
        try:
            service = live_service(settings)
            response = httpx.post(f"{service.url}/reward", json={"items": distinct_items(6)}).json()
            assert [r["overall"] is not None for r in response["results"]] == [True] * 6
            assert metric(service.url, "medix_reward_shared_cache_errors_total", op="get") >= 1
            # Within retry_s Redis is skipped: no more waits, counted as skipped.
            httpx.post(f"{service.url}/reward", json={"items": distinct_items(12)[6:]}).raise_for_status()
            assert metric(service.url, "medix_reward_shared_cache_lookups_total", result="skipped") >= 6
            assert httpx.get(f"{service.url}/ready").status_code == 200
        finally:
            stop.set()
            acceptor.join()
            for conn in accepted:
                conn.close()


def test_a_redis_url_that_is_not_redis_is_refused_at_start_up():
    with pytest.raises(ValueError, match="redis://"):
        CacheSettings(redis_url="http://cache:6379")
