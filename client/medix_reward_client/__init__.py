"""Light client for medix-reward: the SDK and the wire schema. Needs no torch and no fastapi."""

from medix_reward_client._core import APIConnectionError, APIStatusError, APITimeoutError, RewardError
from medix_reward_client.client import AsyncRewardClient, RewardClient
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
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncRewardClient",
    "ComponentError",
    "ComponentScores",
    "ErrorBody",
    "GroupStats",
    "ItemDetails",
    "ItemResult",
    "RewardClient",
    "RewardError",
    "RewardItem",
    "RewardOptions",
    "RewardRequest",
    "RewardResponse",
    "Usage",
    "Weights",
    "WeightsOverride",
]
__version__ = "0.1.0"
