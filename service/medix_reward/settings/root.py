"""The root `Settings`: one env prefix, the groups, and the checks across groups."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from medix_reward.settings.embedder import EmbedderSettings
from medix_reward.settings.evaluate import EvaluateSettings
from medix_reward.settings.judge import JudgeSettings
from medix_reward.settings.limits import AdapterSettings, AuthSettings, LimitsSettings
from medix_reward.settings.reward import DefenceSettings, RewardSettings
from medix_reward.settings.state import CacheSettings, TelemetrySettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIX_REWARD_", env_nested_delimiter="__", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Where `medix-reward serve` listens.")
    port: int = Field(default=8080, ge=0, le=65535, description="Its port.")
    judge: JudgeSettings = JudgeSettings()
    embedder: EmbedderSettings = EmbedderSettings()
    reward: RewardSettings = RewardSettings()
    hardened: DefenceSettings = DefenceSettings()
    limits: LimitsSettings = LimitsSettings()
    adapters: AdapterSettings = AdapterSettings()
    auth: AuthSettings = AuthSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    cache: CacheSettings = CacheSettings()
    telemetry: TelemetrySettings = TelemetrySettings()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if "accuracy_llm" in self.reward.components and not self.judge.base_urls:
            raise ValueError("accuracy_llm is enabled but judge.base_urls is empty")
        if self.judge.backoff_max_s < self.judge.backoff_base_s:
            raise ValueError("judge.backoff_max_s must be at least judge.backoff_base_s")
        return self
