"""medix-reward as a Ray Serve application on a real local Ray cluster (two nodes), against the scripted judge
and the real MiniLM: both replicas serve, results equal a single process's, a replica killed mid-load loses no
request (Serve replaces it; the SDK retries), the deployment autoscales 1 → 2 → 1, and a deployment handle
scores without HTTP through the same route."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from medix_reward_tools.common import grpo_items, wait_for
from medix_reward_tools.live import LiveServer
from medix_reward_tools.scripted_judge import ScriptedJudge

from medix_reward.api.app import create_app
from medix_reward.embedding.backends import SentenceTransformerEncoder
from medix_reward.settings import EmbedderSettings
from medix_reward_client import APIStatusError, RewardClient
from medix_reward_client.serve_handle import ServeHandleClient
from tests.helpers import MINILM, make_settings
from tests.ray.conftest import RayCluster, ray, serve

pytestmark = pytest.mark.ray

from medix_reward.ray_serve import APP_NAME, DEPLOYMENT_NAME, REPLICA_HEADER, build  # noqa: E402


def overrides(judge: ScriptedJudge) -> dict[str, Any]:
    """The replicas' settings: those of the single-process reference, in the Settings model's nested shape."""
    judge_settings = make_settings([judge.url]).judge.model_dump(mode="json")
    return {"judge": judge_settings, "embedder": {"model": MINILM, "device": "cpu"}}


def deploy(judge: ScriptedJudge, **deployment: Any) -> None:
    serve.run(build({"settings": overrides(judge), "deployment": deployment}), name=APP_NAME, route_prefix="/")


def running_replicas() -> int:
    status = serve.status().applications[APP_NAME].deployments[DEPLOYMENT_NAME]
    return status.replica_states.get("RUNNING", 0)


def batches(count: int, prompts: int = 4) -> list[list[dict[str, Any]]]:
    return [grpo_items(prompts, 8, seed=n, first_prompt=n * prompts) for n in range(count)]


class Load:
    """Bounded load through the SDK; records which replica served each attempt that got a response."""

    def __init__(self, url: str):
        self.replicas: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        http = httpx.Client(timeout=120, event_hooks={"response": [self._seen]})
        self.client = RewardClient(url, http_client=http, max_retries=8, timeout=120)

    def _seen(self, response: httpx.Response) -> None:
        with self._lock:
            self.statuses[response.status_code] += 1
            if REPLICA_HEADER in response.headers:
                self.replicas[response.headers[REPLICA_HEADER]] += 1

    def run(self, work: list[list[dict[str, Any]]], workers: int = 4, each: Callable[[int], None] | None = None):
        def one(numbered: tuple[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
            response = self.client.score(numbered[1])
            if each is not None:
                each(numbered[0])
            return [result.scores.model_dump() for result in response.results]

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, enumerate(work)))


@pytest.fixture(scope="module")
def judge() -> Iterator[ScriptedJudge]:
    with ScriptedJudge(latency_s=0.02) as server:
        yield server


@pytest.fixture(scope="module")
def reference(judge: ScriptedJudge) -> Callable[[list[list[dict[str, Any]]]], list[list[dict[str, Any]]]]:
    """The same batches scored by one process (the app in this interpreter, the same settings)."""
    encoder = SentenceTransformerEncoder(EmbedderSettings(model=MINILM, device="cpu"))

    def score(work: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
        with LiveServer(create_app(make_settings([judge.url]), encoder=encoder)) as single:
            return [[r["scores"] for r in httpx.post(f"{single.url}/reward", json={"items": b}, timeout=120).json()
                     ["results"]] for b in work]  # fmt: skip

    return score


@pytest.fixture(scope="module")
def two_replicas(ray_cluster: RayCluster, judge: ScriptedJudge) -> Iterator[RayCluster]:
    deploy(judge, num_replicas=2)
    yield ray_cluster
    serve.delete(APP_NAME)


def test_two_replicas_both_serve_and_agree_with_one_process(two_replicas: RayCluster, reference):
    work = batches(16)
    load = Load(two_replicas.http_url)
    results = load.run(work)
    assert len(load.replicas) == 2, f"replicas seen: {load.replicas}"
    assert results == reference(work)


def test_a_replica_killed_mid_load_loses_no_request(two_replicas: RayCluster, reference):
    work = batches(24)
    load = Load(two_replicas.http_url)
    killed: list[str] = []

    def kill_one_when_under_way(done: int) -> None:
        if done == 4 and not killed:
            victim = next(iter(load.replicas))
            killed.append(victim)
            actor = ray.get_actor(f"SERVE_REPLICA::{APP_NAME}#{DEPLOYMENT_NAME}#{victim}", namespace="serve")
            ray.kill(actor, no_restart=True)

    results = load.run(work, each=kill_one_when_under_way)
    assert killed, "no replica was killed"
    assert results == reference(work), "a request was lost or scored differently"
    wait_for(lambda: running_replicas() == 2, what="Serve replaced the killed replica", timeout_s=180, interval_s=0.5)


def test_a_deployment_handle_scores_through_the_same_route(two_replicas: RayCluster, reference):
    work = batches(2)
    client = ServeHandleClient(f"ray://{APP_NAME}")
    via_handle = [[r.scores.model_dump() for r in client.score(b).results] for b in work]
    assert via_handle == reference(work)
    # The route's validation and limits, not a second copy: past the service's limit, the same 422 naming the field.
    with pytest.raises(APIStatusError) as failure:
        client.score([{"response": "x" * 40_000, "ground_truth": "<X_RAY> Pneumothorax"}])
    assert failure.value.status == 422 and failure.value.param == "items[0].response"


def test_autoscaling_grows_under_load_and_shrinks_after(ray_cluster: RayCluster, judge: ScriptedJudge):
    judge.latency_s = 0.2  # long requests: ongoing requests pile up on one replica
    try:
        deploy(judge, autoscaling_config={
            "min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1, "upscale_delay_s": 1,
            "downscale_delay_s": 3, "look_back_period_s": 2,
        })  # fmt: skip
        assert running_replicas() == 1
        load = Load(ray_cluster.http_url)
        stop = threading.Event()

        def keep_loading() -> None:
            while not stop.is_set():
                load.run(batches(4, prompts=2), workers=4)

        loader = threading.Thread(target=keep_loading)
        loader.start()
        try:
            wait_for(lambda: running_replicas() == 2, what="scaled up to 2 under load", timeout_s=180, interval_s=0.5)
        finally:
            stop.set()
            loader.join()
        wait_for(lambda: running_replicas() == 1, what="scaled back to 1 once idle", timeout_s=180, interval_s=0.5)
    finally:
        judge.latency_s = 0.02
        serve.delete(APP_NAME)
