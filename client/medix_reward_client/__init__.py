"""Light client for medix-reward: the SDK and the wire schema. Needs no torch and no fastapi.

The SDK's names (the clients and their errors) load on first use, so the service's pure modules can import the
wire schema (`medix_reward_client.schema`) without httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from medix_reward_client._core import APIConnectionError, APIStatusError, APITimeoutError, RewardError
    from medix_reward_client.client import AsyncRewardClient, RewardClient

_SDK = {
    "APIConnectionError": "_core",
    "APIStatusError": "_core",
    "APITimeoutError": "_core",
    "RewardError": "_core",
    "AsyncRewardClient": "client",
    "RewardClient": "client",
}


def __getattr__(name: str) -> Any:
    if name not in _SDK:
        raise AttributeError(f"module 'medix_reward_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"medix_reward_client.{_SDK[name]}"), name)
    globals()[name] = value
    return value
