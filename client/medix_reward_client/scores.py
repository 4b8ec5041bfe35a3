"""What trainers that need a float per item make of a result: pure, no I/O, shared by the adapters and the
service's trainer endpoints.

An item the service could not score is never a number that looks like a score: it raises
RewardUnavailable, unless a fallback is configured, which is then logged and counted in FALLBACKS.
"""

from __future__ import annotations

import logging
from collections import Counter

from medix_reward_client._core import RewardError
from medix_reward_client.schema import ItemResult

log = logging.getLogger("medix_reward_client.scores")

# How many values were replaced by a configured fallback, by reason: logged and counted, never silent.
FALLBACKS: Counter[str] = Counter()


class RewardUnavailable(RewardError):
    """An item could not be scored and no fallback was configured."""


def unscored_reason(result: ItemResult) -> str:
    return ", ".join(f"{name}: {error.code}" for name, error in result.errors.items()) or "unscored"


def float_scores(result: ItemResult, fallback: float | None, index: int = 0) -> dict[str, float]:
    """overall and every component as floats, for trainers that cannot take a missing value.

    An item the service could not score raises RewardUnavailable, unless `fallback` is set: then its
    missing values become `fallback`, with a warning and a count in FALLBACKS. `index` is the item's
    place in its batch, named in messages when the item has no id.
    """
    values: dict[str, float | None] = {"overall": result.overall, **result.scores.model_dump()}
    if result.overall is None:
        reason = unscored_reason(result)
        name = f"item {result.id!r}" if result.id is not None else f"item at index {index}"
        if fallback is None:
            raise RewardUnavailable(f"{name} could not be scored ({reason}) and no fallback is set")
        FALLBACKS[reason] += 1
        log.warning("%s could not be scored (%s): using fallback %s", name, reason, fallback)
        values["overall"] = fallback
        for component in result.errors:
            values[component] = fallback
    # What is still None is a component the service was told not to compute: left out, not invented.
    return {component: value for component, value in values.items() if value is not None}
