"""Light client for medix-reward: the wire schema (and, with issue 5, the SDK). Needs no torch."""

from medix_reward_client.schema import (
    COMPONENTS,
    MODALITIES,
    ComponentError,
    ComponentScores,
    ErrorBody,
    GroupStats,
    ItemDetails,
    ItemResult,
    RewardItem,
    RewardOptions,
    RewardRequest,
    RewardResponse,
    Usage,
    Weights,
    WeightsOverride,
)

__all__ = [
    "COMPONENTS",
    "MODALITIES",
    "ComponentError",
    "ComponentScores",
    "ErrorBody",
    "GroupStats",
    "ItemDetails",
    "ItemResult",
    "RewardItem",
    "RewardOptions",
    "RewardRequest",
    "RewardResponse",
    "Usage",
    "Weights",
    "WeightsOverride",
]
__version__ = "0.1.0"
