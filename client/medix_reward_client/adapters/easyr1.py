"""EasyR1 / MediX-R1 reward function: a drop-in for MediX-R1's `medical.py:compute_score`.

    worker.reward.reward_function=/path/to/medix_reward_client/adapters/easyr1.py:compute_score
    worker.reward.reward_function_kwargs='{"url": "http://reward-host:8080"}'

EasyR1 calls `compute_score(reward_inputs, **reward_function_kwargs)` with dicts holding `response`,
`response_length` and `ground_truth` ("<TAG> answer"), and logs every float key of the returned dicts.
Failure: an item that could not be scored (its judge call failed, or every judge call of the batch did and
the service answered 502/504) raises RewardUnavailable, unless `fallback` (a float) is given: then it gets
that value, logged and counted. The kwargs may also set `max_retries`, `retry_budget_s` and `timeout`
(adapters/clients.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medix_reward_client.adapters.clients import Retries, client, score, to_floats

REWARD_TYPE = "batch"
REWARD_NAME = "medix_reward"


def compute_score(
    reward_inputs: Sequence[Mapping[str, Any]],
    url: str | None = None,
    fallback: float | None = None,
    max_retries: int | None = None,
    retry_budget_s: float | None = Retries.retry_budget_s,
    timeout: float = Retries.timeout,
    **_: Any,
) -> list[dict[str, float]]:
    items = [{"response": x["response"], "ground_truth": x["ground_truth"]} for x in reward_inputs]
    retries = Retries(max_retries, retry_budget_s, timeout)
    return to_floats(items, score(client(url, retries), items), fallback)
