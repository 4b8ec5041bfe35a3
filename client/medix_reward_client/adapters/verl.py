"""verl reward functions (`custom_reward_function.path=…/adapters/verl.py`):

- `compute_score` (the default name): one sample, sync; returns {"score": overall, <components>}.
- `compute_score_async`: the same as a coroutine; verl's reward loop awaits it, so many samples are in
  flight at once (set `custom_reward_function.name=compute_score_async`).
- `compute_score_batch`: verl's batch reward manager form, a list in, a list out.

`ground_truth` is MediX form "<TAG> answer". Extra keys (`url`, `fallback`) come from
`custom_reward_function.reward_kwargs`. Failure: raises after retries unless `fallback` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medix_reward_client.adapters.clients import async_client, client
from medix_reward_client.schema import ItemResult
from medix_reward_client.scores import float_scores


def _verl_dict(result: ItemResult, fallback: float | None, index: int = 0) -> dict[str, float]:
    values = float_scores(result, fallback, index)
    return {"score": values.pop("overall"), **values}


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    url: str | None = None,
    fallback: float | None = None,
    **_: Any,
) -> dict[str, float]:
    result = client(url).score([{"response": solution_str, "ground_truth": ground_truth}]).results[0]
    return _verl_dict(result, fallback)


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: dict[str, Any] | None = None,
    url: str | None = None,
    fallback: float | None = None,
    **_: Any,
) -> dict[str, float]:
    response = await async_client(url).score([{"response": solution_str, "ground_truth": ground_truth}])
    return _verl_dict(response.results[0], fallback)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[str],
    extra_infos: Sequence[dict[str, Any] | None] | None = None,
    url: str | None = None,
    fallback: float | None = None,
    **_: Any,
) -> list[dict[str, float]]:
    items = [{"response": s, "ground_truth": g} for s, g in zip(solution_strs, ground_truths, strict=True)]
    return [_verl_dict(result, fallback, i) for i, result in enumerate(client(url).score(items).results)]
