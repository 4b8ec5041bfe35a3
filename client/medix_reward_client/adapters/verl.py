"""verl reward functions (verl 0.9: `reward.custom_reward_function.path=…/adapters/verl.py`; examples/verl_grpo.sh):

- `compute_score` (the default name): one sample, sync; returns {"score": overall, <components>}.
- `compute_score_async`: the same as a coroutine; verl's reward loop awaits it, so many samples are in
  flight at once (set `reward.custom_reward_function.name=compute_score_async`).
- `compute_score_batch`: the form of older verl's `BatchRewardManager`, a list in, a list out (verl 0.9's
  reward loop has no batch manager).

`ground_truth` is MediX form "<TAG> answer". Extra keys (`url`, `fallback`, `max_retries`,
`retry_budget_s`, `timeout`) come from `reward.custom_reward_function.reward_kwargs`. Failure: an item that could
not be scored raises RewardUnavailable, unless `fallback` is given: then it gets that value, logged and counted.
Its judge calls failing while the judge is up is an item failure, answered at once (not retried); the judge
being down is the service's 502/504, retried within `retry_budget_s` (docs/judge-health.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medix_reward_client.adapters.clients import Retries, async_client, client, score, score_async, to_floats


def _verl_dict(values: dict[str, float]) -> dict[str, float]:
    return {"score": values.pop("overall"), **values}


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    url: str | None = None,
    fallback: float | None = None,
    max_retries: int | None = None,
    retry_budget_s: float | None = Retries.retry_budget_s,
    timeout: float = Retries.timeout,
    **_: Any,
) -> dict[str, float]:
    items = [{"response": solution_str, "ground_truth": ground_truth}]
    reward_client = client(url, Retries(max_retries, retry_budget_s, timeout))
    return _verl_dict(to_floats(items, score(reward_client, items), fallback)[0])


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    url: str | None = None,
    fallback: float | None = None,
    max_retries: int | None = None,
    retry_budget_s: float | None = Retries.retry_budget_s,
    timeout: float = Retries.timeout,
    **_: Any,
) -> dict[str, float]:
    items = [{"response": solution_str, "ground_truth": ground_truth}]
    reward_client = async_client(url, Retries(max_retries, retry_budget_s, timeout))
    return _verl_dict(to_floats(items, await score_async(reward_client, items), fallback)[0])


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[str],
    extra_infos: Sequence[dict[str, Any] | None] | None = None,
    url: str | None = None,
    fallback: float | None = None,
    max_retries: int | None = None,
    retry_budget_s: float | None = Retries.retry_budget_s,
    timeout: float = Retries.timeout,
    **_: Any,
) -> list[dict[str, float]]:
    items = [{"response": s, "ground_truth": g} for s, g in zip(solution_strs, ground_truths, strict=True)]
    reward_client = client(url, Retries(max_retries, retry_budget_s, timeout))
    return [_verl_dict(values) for values in to_floats(items, score(reward_client, items), fallback)]
