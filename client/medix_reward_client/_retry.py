"""When to try again: capped exponential backoff with full jitter, and a server's Retry-After as a floor.

The one rule the SDK (`_core.retry_delay`) and the service's judge client (`JudgeClient`) retry by; each passes
its own base, cap and Retry-After cap (the SDK's from `ClientConfig`, the judge's from `JudgeSettings`).
"""

from __future__ import annotations

import math


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds; None when absent or not a non-negative number (an HTTP date, rare from
    model servers and from this service, falls back to the backoff)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def backoff_delay(
    attempt: int, *, base: float, cap: float, jitter: float, retry_after: str | None = None, retry_after_cap: float
) -> float:
    """The wait before retry `attempt + 1`: a `jitter` share (0..1) of min(cap, base·2^attempt), and at least
    the server's Retry-After, itself capped at `retry_after_cap`."""
    delay = jitter * min(cap, base * 2**attempt)
    seconds = retry_after_seconds(retry_after)
    if seconds is not None:
        delay = max(delay, min(seconds, retry_after_cap))
    return delay
