"""EasyR1 / MediX-R1 reward function: a drop-in for MediX-R1's `medical.py:compute_score`.

    worker.reward.reward_function=/path/to/medix_reward_client/adapters/easyr1.py:compute_score
    worker.reward.reward_function_kwargs='{"url": "http://reward-host:8080"}'

EasyR1 calls `compute_score(reward_inputs, **reward_function_kwargs)` with dicts holding `response`,
`response_length` and `ground_truth` ("<TAG> answer"), and logs every float key of the returned dicts.
Failure: raises after the client's retries, unless `fallback` (a float) is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medix_reward_client.adapters.clients import client
from medix_reward_client.scores import float_scores

REWARD_TYPE = "batch"
REWARD_NAME = "medix_reward"


def compute_score(
    reward_inputs: Sequence[Mapping[str, Any]], url: str | None = None, fallback: float | None = None, **_: Any
) -> list[dict[str, float]]:
    items = [{"response": x["response"], "ground_truth": x["ground_truth"]} for x in reward_inputs]
    response = client(url).score(items)
    return [float_scores(result, fallback, i) for i, result in enumerate(response.results)]
