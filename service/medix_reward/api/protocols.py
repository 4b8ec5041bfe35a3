"""Other trainers' reward-server protocols, served by translation to and from `/reward`.

- OpenRLHF (`--reward.remote_url` / `--remote_rm_url`): POST {"query": [...], "prompts": [...],
  "labels": [...]}, where each query is prompt + response decoded together, special tokens kept (the
  end-of-turn tokens a finished response ends in are dropped); answer {"rewards",
  "scores", "extra_logs"}. OpenRLHF sends one sample per call, many calls at once: the pipeline's
  micro-batcher and judge pool batch across calls.
- slime (`--rm-type remote_rm --rm-url`): POST {"prompt", "response", "label"}; answer a dict whose
  `reward` key (`--reward-key reward`) is the composite, beside each component.

Both need a float for every sample: an item that could not be scored (its judge call failed, or every
judge call of the request did) fails the call with 502 `unscored`, so the trainer's retry applies, unless
`adapters.fallback` is set, which is then logged and counted. routes.py applies that policy (scores.py);
this module only translates.
These shapes are the trainers', so unknown fields are ignored rather than refused.

Neither carries a group id: a sample's group is its prompt (`prompt_group_id`), so a GRPO group's samples,
sent one per call, meet in the service's cross-request group statistics (groups.py). An OpenRLHF call without
`prompts` has no prompt to group by.
"""

from __future__ import annotations

import hashlib
import json
import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medix_reward_client.schema import COMPONENTS, RewardItem, RewardRequest


def prompt_group_id(prompt: str | list[dict[str, object]] | None) -> str | None:
    """The group of a sample whose trainer sends no group id: a digest of its prompt text (a chat prompt as
    canonical JSON). None without a prompt."""
    if not prompt:
        return None
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)
    return "prompt:" + hashlib.sha256(text.encode()).hexdigest()[:24]


class _Foreign(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OpenRLHFRequest(_Foreign):
    query: list[str] = Field(min_length=1, description="prompt + response, decoded together")
    prompts: list[str] | None = Field(default=None, description="the prompts, to strip from each query")
    labels: list[str] = Field(description="ground truths, MediX form '<TAG> answer'")

    @model_validator(mode="after")
    def _same_lengths(self) -> OpenRLHFRequest:
        if len(self.labels) != len(self.query) or (self.prompts is not None and len(self.prompts) != len(self.query)):
            raise ValueError("query, prompts and labels must have the same length")
        return self

    def label_field(self, index: int) -> str:
        return f"labels[{index}]"

    def to_reward_request(self) -> RewardRequest:
        prompts = self.prompts or [""] * len(self.query)
        return RewardRequest(
            items=[
                RewardItem(
                    response=without_end_markers(query.removeprefix(prompt)),
                    ground_truth=label,
                    group_id=prompt_group_id(prompt),
                )
                for query, prompt, label in zip(self.query, prompts, self.labels, strict=True)
            ]
        )


# A chat template's end-of-turn or end-of-text token, as a tokenizer decodes it: `<|im_end|>`, `<|eot_id|>`,
# `<|endoftext|>`, `</s>`.
_END_MARKER = re.compile(r"(?:<\|[A-Za-z_]{1,32}\|>|</s>)\Z")


def without_end_markers(response: str, limit: int = 4) -> str:
    """The response without the end-of-turn tokens a finished generation ends in. OpenRLHF (0.11) decodes
    prompt + response with special tokens kept, so its every finished response ends in one: not the policy's
    text, and the format check (text must end in the closing answer tag) would fail on it."""
    for _ in range(limit):
        stripped = response.rstrip()
        found = _END_MARKER.search(stripped, max(0, len(stripped) - 40))
        if found is None:
            break
        response = stripped[: found.start()]
    return response


class OpenRLHFResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]


def openrlhf_response(values: list[dict[str, float]]) -> OpenRLHFResponse:
    """From each sample's floats (scores.py)."""
    overall = [v["overall"] for v in values]
    logs = {name: [v.get(name, 0.0) for v in values] for name in COMPONENTS if all(name in v for v in values)}
    return OpenRLHFResponse(rewards=overall, scores=overall, extra_logs=logs)


class SlimeRequest(_Foreign):
    prompt: str | list[dict[str, object]] | None = None
    response: str
    label: str = Field(description="the ground truth, MediX form '<TAG> answer'")

    def label_field(self, index: int) -> str:
        return "label"

    def to_reward_request(self) -> RewardRequest:
        item = RewardItem(response=self.response, ground_truth=self.label, group_id=prompt_group_id(self.prompt))
        return RewardRequest(items=[item])


class SlimeResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    reward: float


def slime_response(values: list[dict[str, float]]) -> SlimeResponse:
    """From the one sample's floats (scores.py)."""
    rest = dict(values[0])
    return SlimeResponse(reward=rest.pop("overall"), **rest)
