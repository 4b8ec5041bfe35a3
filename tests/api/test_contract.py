"""The checked-in OpenAPI document, the settings guard rails, and the example batch of examples/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from medix_reward.api.app import openapi_yaml
from medix_reward.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_yaml_matches_the_app():
    checked_in = (ROOT / "openapi.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(checked_in) == yaml.safe_load(openapi_yaml()), (
        "openapi.yaml is stale: run `medix-reward openapi -o openapi.yaml`"
    )


def test_openapi_documents_every_error_of_reward():
    spec = yaml.safe_load(openapi_yaml())
    responses = spec["paths"]["/reward"]["post"]["responses"]
    assert {"200", "422", "429", "500", "502", "504"} <= set(responses)
    assert responses["502"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MEDIX_REWARD_JUDGE__BASE_URLS": "[]"}, "base_urls is empty"),
        ({"MEDIX_REWARD_JUDGE__BASE_URLS": '["judge:8000/v1"]'}, "must start with http"),
        ({"MEDIX_REWARD_REWARD__THINKING_TAG": "answer"}, "must differ"),
        ({"MEDIX_REWARD_REWARD__ANSWER_TAG": "a>b"}, "tag name"),
        ({"MEDIX_REWARD_REWARD__EMBED_THRESHOLD": "1.5"}, "less than or equal to 1"),
        ({"MEDIX_REWARD_JUDGE__CONCURRENCY": "0"}, "greater than or equal to 1"),
        ({"MEDIX_REWARD_JUDGE__BACKOFF_MAX_S": "0.01"}, "backoff_max_s"),
        ({"MEDIX_REWARD_REWARD__WEIGHTS__FORMAT": "-1"}, "greater than or equal to 0"),
        ({"MEDIX_REWARD_JUDGE__TIMEOUT": "3"}, "Extra inputs"),
        ({"MEDIX_REWARD_EMBEDDER__BACKEND": "tensorrt"}, "'torch', 'onnx' or 'openvino'"),
        ({"MEDIX_REWARD_EMBEDDER__BACKEND": "onnx", "MEDIX_REWARD_EMBEDDER__DTYPE": "float16"}, "needs backend torch"),
    ],
)
def test_impossible_settings_are_refused_at_start(monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("MEDIX_REWARD_JUDGE__BASE_URLS", '["http://a:8000/v1/", "http://b:8000/v1"]')
    monkeypatch.setenv("MEDIX_REWARD_EMBEDDER__MAX_BATCH_SIZE", "128")
    settings = Settings()
    assert settings.judge.base_urls == ["http://a:8000/v1", "http://b:8000/v1"]
    assert settings.embedder.max_batch_size == 128


def test_the_readme_example_batch_is_valid():
    from medix_reward_client.schema import RewardRequest

    request = RewardRequest.model_validate_json((ROOT / "examples" / "grpo-batch.json").read_text())
    assert len({item.group_id for item in request.items}) == 2
