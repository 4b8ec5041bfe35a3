"""What trainers that need a float per item make of a result: pure, no I/O, shared by the adapters and the
service's trainer endpoints.

An item the service could not score is never a number that looks like a score: it raises
RewardUnavailable, unless a fallback is configured, which is then logged and counted in FALLBACKS. That
holds for one item whose judge call failed (`float_scores`) and for a whole request whose every judge call
failed, which the service answers with 502/504 (`request_unscored`, `whole_request_scores`).
"""

from __future__ import annotations

import logging
from collections import Counter

from medix_reward_client._core import APIStatusError, RewardError
from medix_reward_client.schema import COMPONENTS, ItemResult

log = logging.getLogger("medix_reward_client.scores")

# How many values were replaced by a configured fallback, by reason: logged and counted, never silent.
FALLBACKS: Counter[str] = Counter()


class RewardUnavailable(RewardError):
    """An item could not be scored and no fallback was configured."""


class ItemRejected(RewardUnavailable):
    """An item could not be scored for good (the judge refuses its input, e.g. too long): asking again cannot
    help, so the trainer endpoints answer it 422, which no client retries."""


# Reasons an item could not be scored that no retry changes.
PERMANENT_CODES = frozenset({"judge_rejected_input"})


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
            permanent = result.errors and all(error.code in PERMANENT_CODES for error in result.errors.values())
            unavailable = ItemRejected if permanent else RewardUnavailable
            raise unavailable(f"{name} could not be scored ({reason}) and no fallback is set")
        FALLBACKS[reason] += 1
        log.warning("%s could not be scored (%s): using fallback %s", name, reason, fallback)
        values["overall"] = fallback
        for component in result.errors:
            values[component] = fallback
    # What is still None is a component the service was told not to compute: left out, not invented.
    return {component: value for component, value in values.items() if value is not None}


def request_unscored(error: APIStatusError) -> str | None:
    """The reason, when `error` is the service saying it could score none of the request's items (every judge
    call failed: 502/504 with a `judge_error` or `unscored` body); None for any other error (bad input,
    auth, a proxy's 502 page), which no fallback should hide."""
    body = error.body.get("error") if isinstance(error.body, dict) else None
    if error.status not in (502, 504) or not isinstance(body, dict):
        return None
    if body.get("type") not in ("judge_error", "unscored"):
        return None
    return str(body.get("code") or body["type"])


def whole_request_scores(count: int, fallback: float | None, reason: str, message: str) -> list[dict[str, float]]:
    """Every value of each of `count` items when none could be scored: raises RewardUnavailable naming the
    reason, unless `fallback` is set, which then fills overall and every component (logged and counted)."""
    if fallback is None:
        raise RewardUnavailable(
            f"none of the {count} items could be scored ({reason}: {message}) and no fallback is set"
        )
    FALLBACKS[reason] += count
    log.warning("none of the %d items could be scored (%s: %s): using fallback %s", count, reason, message, fallback)
    return [{"overall": fallback, **dict.fromkeys(COMPONENTS, fallback)} for _ in range(count)]
