"""The wire schema of `POST /reward` and `POST /evaluate`: the one source of truth, imported by the server.

`reward.py` and `evaluate.py` hold each endpoint's models, `base.py` what both share (the request and response
bases, the one error body); every name is importable from here.
"""

from __future__ import annotations

from medix_reward_client.schema.base import ErrorBody, ErrorDetail
from medix_reward_client.schema.evaluate import (
    MEDIX_R1_TASKS,
    Calibration,
    Combine,
    EvalKind,
    EvaluateItem,
    EvaluateOptions,
    EvaluateRequest,
    EvaluateResponse,
    EvaluateResult,
    EvaluateUsage,
    RoundResult,
    SampleError,
)
from medix_reward_client.schema.reward import (
    COMPONENTS,
    MAX_WEIGHT,
    MODALITIES,
    PRESETS,
    ClosedGroup,
    Component,
    ComponentError,
    ComponentScores,
    GroupSize,
    GroupsSummary,
    GroupStats,
    ItemDetails,
    ItemResult,
    OmittableStr,
    Preset,
    PresetRates,
    RewardItem,
    RewardOptions,
    RewardRequest,
    RewardResponse,
    Shortcut,
    StageTimes,
    StatsResponse,
    Usage,
    Weights,
    WeightsOverride,
)

__all__ = [
    "COMPONENTS", "MAX_WEIGHT", "MEDIX_R1_TASKS", "MODALITIES", "PRESETS", "Calibration", "ClosedGroup", "Combine",
    "Component", "ComponentError", "ComponentScores", "ErrorBody", "ErrorDetail", "EvalKind", "EvaluateItem",
    "EvaluateOptions", "EvaluateRequest", "EvaluateResponse", "EvaluateResult", "EvaluateUsage", "GroupSize",
    "GroupStats", "GroupsSummary", "ItemDetails", "ItemResult", "OmittableStr", "Preset", "PresetRates", "RewardItem",
    "RewardOptions", "RewardRequest", "RewardResponse", "RoundResult", "SampleError", "Shortcut", "StageTimes",
    "StatsResponse", "Usage", "Weights", "WeightsOverride",
]  # fmt: skip
