"""The deployment files, checked as far as a machine without a Docker engine allows: docker-compose.yml
parses and agrees with the service (variable names are real settings, ports, health-check paths, the
judge's address and model name), the Dockerfile builds the way the README says, Prometheus scrapes a
path that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from medix_reward.app import create_app
from medix_reward.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES = COMPOSE["services"]
REWARD_ENV: dict[str, str] = SERVICES["reward"]["environment"]


def app_paths() -> set[str]:
    return set(create_app(Settings()).openapi()["paths"])


def substituted(value: str) -> str:
    """What compose makes of ${VAR:-default} and ${VAR:?message} with the variable set to a valid value."""
    return re.sub(r"\$\{[A-Z_]+:[?-][^}]*\}", '["a-key"]', value)


def setting_exists(name: str) -> bool:
    model: type = Settings
    for part in name.removeprefix("MEDIX_REWARD_").lower().split("__"):
        field = model.model_fields.get(part)
        if field is None:
            return False
        model = field.annotation
    return True


def test_compose_has_the_stack():
    assert {"judge", "reward", "prometheus"} <= set(SERVICES)
    assert SERVICES["prometheus"]["profiles"] == ["monitoring"]
    assert SERVICES["reward"]["depends_on"]["judge"]["condition"] == "service_healthy"
    for name in ("judge", "reward"):
        device = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        assert "models:/models" in SERVICES[name]["volumes"]  # one shared model cache
    assert "models" in COMPOSE["volumes"]


@pytest.mark.parametrize("name", [n for n in REWARD_ENV if n.startswith("MEDIX_REWARD_")])
def test_every_service_variable_is_a_real_setting(name):
    assert setting_exists(name), f"{name} is not a setting the service reads"


def test_compose_environment_makes_valid_settings(monkeypatch):
    for name, value in REWARD_ENV.items():
        monkeypatch.setenv(name, substituted(str(value)))
    settings = Settings()
    assert settings.auth.keys and settings.host == "0.0.0.0"
    assert settings.embedder.model == "abhinand/MedEmbed-large-v0.1"
    judge_args = dict(arg.removeprefix("--").split("=", 1) for arg in SERVICES["judge"]["command"])
    assert settings.judge.base_urls == [f"http://judge:{judge_args['port']}/v1"]
    assert settings.judge.model == judge_args["served-model-name"]
    published = SERVICES["reward"]["ports"][0].rsplit(":", 1)[1]
    assert published == str(settings.port) and f"EXPOSE {settings.port}" in DOCKERFILE


def test_keys_are_required_where_the_service_listens_on_the_network():
    assert ":?" in REWARD_ENV["MEDIX_REWARD_AUTH__KEYS"]


def test_health_checks_probe_paths_that_exist():
    paths = app_paths()
    for check in (" ".join(SERVICES["reward"]["healthcheck"]["test"]), DOCKERFILE):
        probed = re.findall(r"http://127\.0\.0\.1:8080(/[a-z/]+)", check)
        assert probed and set(probed) <= paths and "/ready" in probed


def test_prometheus_scrapes_the_metrics_path():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    reward = next(job for job in config["scrape_configs"] if job["job_name"] == "medix-reward")
    assert reward["metrics_path"] in app_paths()
    assert reward["static_configs"][0]["targets"] == ["reward:8080"]


def test_dockerfile_shape():
    lines = [line.strip() for line in DOCKERFILE.splitlines()]
    deps = next(i for i, line in enumerate(lines) if "pip install '.[server]'" in line)
    source = next(i for i, line in enumerate(lines) if line.startswith("COPY service/"))
    assert deps < source  # dependencies in a layer before the source
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert 'CMD ["medix-reward", "serve"]' in lines
    assert "--workers" not in DOCKERFILE  # one process per GPU
