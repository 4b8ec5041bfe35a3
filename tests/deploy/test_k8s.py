"""The Ray and Kubernetes deployment files, checked offline (no cluster): they parse, every MEDIX_REWARD_*
variable is a real setting and together they make valid Settings, ports and probe paths agree with the app,
and the RayService runs the application deploy/ray/serve.yaml describes. Ray's own schema check of serve.yaml
is in tests/ray/test_config.py (it needs ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from medix_reward.settings import Settings
from tests.deploy.test_deploy import app_paths, setting_exists

ROOT = Path(__file__).resolve().parents[2]
SERVE = yaml.safe_load((ROOT / "deploy" / "ray" / "serve.yaml").read_text())
RAYSERVICE = yaml.safe_load((ROOT / "deploy" / "k8s" / "rayservice.yaml").read_text())
PLAIN = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "reward.yaml").read_text()))
REDIS = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "redis.yaml").read_text()))


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(doc for doc in documents if doc["kind"] == kind)


def serve_env(config: dict[str, Any]) -> dict[str, str]:
    return config["applications"][0]["runtime_env"]["env_vars"]


RAY_APP = RAYSERVICE["spec"]["serveConfigV2"]
PLAIN_CONTAINER = by_kind(PLAIN, "Deployment")["spec"]["template"]["spec"]["containers"][0]
PLAIN_ENV = {e["name"]: e.get("value", '["a-key"]') for e in PLAIN_CONTAINER["env"]}
ALL_ENV = {**serve_env(SERVE), **serve_env(yaml.safe_load(RAY_APP)), **PLAIN_ENV}


@pytest.mark.parametrize("name", sorted(n for n in ALL_ENV if n.startswith("MEDIX_REWARD_")))
def test_every_variable_is_a_real_setting(name):
    assert setting_exists(name), f"{name} is not a setting the service reads"


@pytest.mark.parametrize(
    "env", [serve_env(SERVE), serve_env(yaml.safe_load(RAY_APP)), PLAIN_ENV], ids=["serve", "rayservice", "plain"]
)
def test_each_file_makes_valid_settings_with_a_shared_cache(env, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.cache.redis_url is not None and settings.cache.redis_url.endswith(":6379/0")


def test_the_rayservice_runs_the_serve_config_application():
    ray_app = yaml.safe_load(RAY_APP)["applications"][0]
    serve_app = SERVE["applications"][0]
    for key in ("name", "route_prefix", "import_path"):
        assert ray_app[key] == serve_app[key]
    assert set(serve_env(yaml.safe_load(RAY_APP))) == set(serve_env(SERVE))
    [deployment] = ray_app["deployments"]
    assert deployment["name"] == serve_app["deployments"][0]["name"] == "RewardService"
    assert 0 < deployment["ray_actor_options"]["num_gpus"] < 1  # a fraction of a GPU per encoder replica
    head_ports = RAYSERVICE["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    assert {p["name"]: p["containerPort"] for p in head_ports}["serve"] == 8000
    assert SERVE["http_options"]["port"] == 8000


def test_the_rayservice_image_has_the_version_of_the_ray_extra():
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = RAYSERVICE["spec"]["rayClusterConfig"]["rayVersion"]
    assert f'ray = ["ray[serve]=={version}"]' in pyproject
    assert f"FROM rayproject/ray:{version}-" in (ROOT / "deploy" / "ray" / "Dockerfile").read_text()


def test_plain_manifests_agree_with_the_app():
    settings_port = int(PLAIN_ENV["MEDIX_REWARD_PORT"])
    assert PLAIN_CONTAINER["ports"][0]["containerPort"] == settings_port
    for probe in ("readinessProbe", "livenessProbe"):
        assert PLAIN_CONTAINER[probe]["httpGet"]["path"] in app_paths()
        assert PLAIN_CONTAINER[probe]["httpGet"]["port"] == PLAIN_CONTAINER["ports"][0]["name"]
    assert PLAIN_CONTAINER["readinessProbe"]["httpGet"]["path"] == "/ready"
    service, hpa = by_kind(PLAIN, "Service"), by_kind(PLAIN, "HorizontalPodAutoscaler")
    deployment = by_kind(PLAIN, "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_redis_is_memory_bounded_and_reachable_where_the_service_looks():
    deployment, service = by_kind(REDIS, "Deployment"), by_kind(REDIS, "Service")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "allkeys-lru" and "--maxmemory" in args
    host_port = f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    assert PLAIN_ENV["MEDIX_REWARD_CACHE__REDIS_URL"] == host_port
    assert serve_env(yaml.safe_load(RAY_APP))["MEDIX_REWARD_CACHE__REDIS_URL"] == host_port
