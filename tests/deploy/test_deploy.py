"""The deployment files, checked as far as a machine without a Docker engine allows: docker-compose.yml is
valid to compose implementations and agrees with the service (variable names are real settings, ports,
health-check paths, the judge's address and model name), the Dockerfile builds the way docs/operations.md says,
Prometheus scrapes a path that exists. `make image` builds the Dockerfile and runs the image (scripts/image.sh)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose

from medix_reward.api.app import create_app
from medix_reward.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
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
    assert "ARG BASE=python:3.11-slim" in lines and "FROM ${BASE}" in lines  # the GPU node's default base
    assert "ARG TORCH=torch" in lines  # PyPI's Linux wheel, the CUDA build; make image passes a CPU one
    torch = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install") and '"$TORCH"' in line)
    deps = next(i for i, line in enumerate(lines) if "pip install '.[server]'" in line)
    source = next(i for i, line in enumerate(lines) if line.startswith("COPY service/"))
    assert torch < deps < source  # torch, then the dependencies, in layers before the source
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    assert 'CMD ["medix-reward", "serve"]' in lines
    assert "--workers" not in DOCKERFILE  # one process per GPU


# docker-compose.yml as compose implementations read it: podman-compose (PyPI) interpolates and normalises it as
# `docker compose` would, and compose_spec (the Rust crate's Python bindings) parses the result into the Compose
# Specification's types, refusing unknown keys, bad durations and unknown dependency conditions.
def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "podman_compose", "--dry-run", "-f", "docker-compose.yml", "config"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIX_REWARD_", "HF_TOKEN"))}
    return subprocess.run(command, cwd=ROOT, env=environ | env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def normalised_text() -> str:
    result = compose_config(MEDIX_REWARD_API_KEYS='["a-key"]')
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def normalised(normalised_text) -> dict:
    compose = PyCompose.from_yaml(normalised_text)  # raises ValueError on anything outside the specification
    compose.validate()  # every volume and network a service names is declared
    return compose.to_dict()


def test_compose_implementations_accept_the_file(normalised):
    assert set(normalised["services"]) == {"judge", "reward"}  # prometheus only under its profile
    assert normalised["services"]["reward"]["environment"]["MEDIX_REWARD_AUTH__KEYS"] == '["a-key"]'


def test_the_reward_service_starts_once_the_judge_is_healthy(normalised):
    judge, reward = normalised["services"]["judge"], normalised["services"]["reward"]
    assert reward["depends_on"] == {"judge": {"condition": "service_healthy"}}
    for service, path in ((judge, "/health"), (reward, "/ready")):
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and path in check["test"][-1]
        assert check["start_period"] and check["retries"] >= 1  # a model's load fits before failures count


def test_compose_refuses_to_start_without_keys():
    result = compose_config()
    assert result.returncode != 0 and "MEDIX_REWARD_API_KEYS" in result.stderr


@pytest.mark.parametrize(
    ("valid", "invalid"),
    [("condition: service_healthy", "condition: service_ready"), ("start_period: 300s", "start_period: 5 min")],
)
def test_the_specification_types_refuse_a_broken_file(normalised_text, valid, invalid):
    assert valid in normalised_text
    with pytest.raises(ValueError):
        PyCompose.from_yaml(normalised_text.replace(valid, invalid))
