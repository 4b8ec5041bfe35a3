"""deploy/ray/serve.yaml and the RayService's serveConfigV2 as Ray reads them: Ray's own schema
(ServeDeploySchema), then the Settings each application's variables make."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medix_reward.ray_serve import DEPLOYMENT_NAME, check_config
from tests.ray.conftest import serve  # noqa: F401  # skips without ray

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]


def test_the_serve_config_passes_rays_schema_and_makes_settings():
    [settings] = check_config(ROOT / "deploy" / "ray" / "serve.yaml")
    assert settings.cache.redis_url == "redis://redis:6379/0"
    assert len(settings.judge.base_urls) == 2  # the service's own replica list of judges


def test_the_rayservice_serve_config_passes_rays_schema(tmp_path: Path):
    service = yaml.safe_load((ROOT / "deploy" / "k8s" / "rayservice.yaml").read_text())
    config = tmp_path / "serve.yaml"
    config.write_text(service["spec"]["serveConfigV2"])
    [settings] = check_config(config)
    assert settings.judge.base_urls == ["http://vllm-judge:8000/v1"]
    deployment = yaml.safe_load(config.read_text())["applications"][0]["deployments"][0]
    assert deployment["name"] == DEPLOYMENT_NAME


def test_an_impossible_setting_fails_the_check_not_the_first_request(tmp_path: Path):
    config = yaml.safe_load((ROOT / "deploy" / "ray" / "serve.yaml").read_text())
    config["applications"][0]["runtime_env"]["env_vars"]["MEDIX_REWARD_CACHE__REDIS_URL"] = "http://redis:6379"
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="redis://"):
        check_config(path)


def test_a_config_that_ray_refuses_is_refused(tmp_path: Path):
    path = tmp_path / "serve.yaml"
    app = {"name": "x", "import_path": "medix_reward.ray_serve:build", "deployments": "RewardService"}  # not a list
    path.write_text(yaml.safe_dump({"applications": [app]}))
    with pytest.raises(Exception, match="deployments"):
        check_config(path)


def test_the_cli_checks_the_config_before_it_deploys(tmp_path: Path):
    from medix_reward.cli import main

    config = yaml.safe_load((ROOT / "deploy" / "ray" / "serve.yaml").read_text())
    config["applications"][0]["runtime_env"]["env_vars"]["MEDIX_REWARD_JUDGE__TIMEOUT_S"] = "-1"
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="timeout_s"):
        main(["ray-serve", "--config", str(path)])
