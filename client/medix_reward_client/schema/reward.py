"""The wire schema of `POST /reward` (and `GET /stats`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from medix_reward_client.schema.base import _Request, _Response

Component = Literal["format", "modality", "accuracy_llm", "accuracy_embed"]
COMPONENTS: tuple[Component, ...] = ("format", "modality", "accuracy_llm", "accuracy_embed")

# The 16 image modalities of MediX-R1; the tag before <thinking> names one of them.
MODALITIES: tuple[str, ...] = (
    "X_RAY", "MICROSCOPY", "CLINICAL_PHOTOGRAPHY", "CT_SCAN", "GRAPHICS", "ANGIOGRAPHY", "PET_SCAN",
    "ULTRASOUND", "MRI_SCAN", "FUNDUS_PHOTOGRAPHY", "OCT_SCAN", "ENDOSCOPY", "MAMMOGRAPHY",
    "FLUOROSCOPY", "OTHER", "SPECT",
)  # fmt: skip

Shortcut = Literal["exact_match", "invalid_answer", "rejected"]
Preset = Literal["medix-r1", "hardened"]
PRESETS: tuple[Preset, ...] = ("medix-r1", "hardened")
# A string that may be left out but not sent as null (the spec says so, and the server refuses null).
OmittableStr = Annotated[str | None, WithJsonSchema({"type": "string"})]
# A group's declared size, a JSON integer: JSON Schema counts 8.0 as one, so a whole float is taken (strict mode
# alone refuses it).
GroupSize = Annotated[
    int, Field(ge=1, le=65_536), BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)
]


class RewardItem(_Request):
    """One completion to score, with its ground truth in MediX form or as answer + modality."""

    model_config = ConfigDict(
        json_schema_extra={
            # The validator below, said in the schema: `ground_truth`, or `answer` (with optional `modality`).
            "oneOf": [
                {
                    "required": ["ground_truth"],
                    "not": {"anyOf": [{"required": ["answer"]}, {"required": ["modality"]}]},
                },
                {"required": ["answer"], "not": {"required": ["ground_truth"]}},
            ]
        }
    )

    response: str = Field(description="The completion text, e.g. '<X_RAY> <thinking>…</thinking> <answer>…</answer>'.")
    ground_truth: OmittableStr = Field(
        default=None, description="MediX form '<TAG> answer'. Give this, or `answer` (and `modality`)."
    )
    answer: OmittableStr = Field(default=None, description="The true answer, when not given as `ground_truth`.")
    modality: OmittableStr = Field(
        default=None, description="The true modality tag with `answer`, e.g. 'X_RAY' or '<X_RAY>'."
    )
    id: str | int | None = Field(default=None, description="Echoed back in the result.")
    group_id: str | int | None = Field(
        default=None, description="Items sharing it are one GRPO group; the response carries its statistics."
    )
    group_size: GroupSize | None = Field(
        default=None,
        description="The group's declared size: once this many members have arrived, in this request or across "
        "requests, the service closes the group and counts its statistics (GET /stats, /metrics). Optional.",
    )
    prompt: str | None = Field(default=None, description="Accepted for logging; not used in scoring.")

    @model_validator(mode="after")
    def _one_ground_truth_form(self) -> RewardItem:
        for name in ("ground_truth", "answer", "modality"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"`{name}` may be left out, but not null")
        if (self.ground_truth is None) == (self.answer is None):
            raise ValueError("give exactly one of `ground_truth` or `answer`")
        if self.modality is not None and self.ground_truth is not None:
            raise ValueError("`modality` goes with `answer`; `ground_truth` carries its own tag")
        return self


# Weights are relative: a weight beyond this says nothing more, and products of larger finite ones overflowed
# the group statistics (1e200 gave a 500).
MAX_WEIGHT = 1000.0


class Weights(BaseModel):
    """overall = content·(accuracy_llm·J + accuracy_embed·E + modality·M) + format·F."""

    model_config = ConfigDict(extra="forbid")  # not strict: the service reads it from environment strings

    content: float = Field(default=0.9, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)
    format: float = Field(default=0.1, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)
    accuracy_llm: float = Field(default=0.575, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)
    accuracy_embed: float = Field(default=0.375, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)
    modality: float = Field(default=0.05, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)


class WeightsOverride(_Request):
    content: float | None = Field(default=None, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)
    format: float | None = Field(default=None, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)
    accuracy_llm: float | None = Field(default=None, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)
    accuracy_embed: float | None = Field(default=None, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)
    modality: float | None = Field(default=None, ge=0, le=MAX_WEIGHT, allow_inf_nan=False)


class RewardOptions(_Request):
    """Per-request overrides of the service's reward settings."""

    preset: Preset | None = Field(
        default=None,
        description="'medix-r1' reproduces the MediX-R1 reference; 'hardened' adds the service's defences "
        "against reward hacking (see README). Default: the service's setting.",
    )
    weights: WeightsOverride | None = None
    embed_threshold: float | None = Field(default=None, ge=-1, le=1)
    deadline_s: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds the judge calls of this request may take in all; pairs not judged by then are null "
        "with `judge_deadline`, the rest scored. Default: the service's setting.",
    )
    components: list[Component] | None = Field(
        default=None, min_length=1, description="Components to compute; the others are null and weigh nothing."
    )


class RewardRequest(_Request):
    items: list[RewardItem] = Field(min_length=1)
    options: RewardOptions | None = None


class ComponentScores(_Response):
    format: float | None = None
    modality: float | None = None
    accuracy_llm: float | None = None
    accuracy_embed: float | None = None


class ComponentError(_Response):
    code: str = Field(
        description="judge_timeout, judge_unreachable, judge_http_error, judge_bad_reply, judge_deadline (not judged "
        "within the request's deadline), judge_no_logprobs, judge_rejected_input "
        "(the judge refused this item's input, e.g. too long for its context) or no_true_modality"
    )
    message: str


class ItemDetails(_Response):
    predicted_answer: str
    true_answer: str
    predicted_modality: str | None = Field(description="Text before the first thinking tag, if any.")
    true_modality: str | None
    shortcut: Shortcut | None = Field(
        description="exact_match, invalid_answer or rejected: accuracy set without model calls."
    )
    rejection: str | None = Field(
        default=None,
        description="Why the hardened preset gave no accuracy credit: a screening rule, format_abuse "
        "(both accuracies 0, no model asked), or semantic_gate / swap_disagrees (accuracy_llm 0).",
    )
    judge_verdict: Literal["YES", "NO"] | None = None
    judge_reply: str | None = None
    judge_p_yes: float | None = Field(default=None, description="Judge probability of YES, when logprobs are on.")
    judge_cached: bool | None = None
    judge_truncated: bool | None = Field(
        default=None,
        description="The judge was shown the answers cut to judge.max_answer_chars (null when no judge was asked).",
    )
    judge_swap_verdict: Literal["YES", "NO"] | None = Field(
        default=None, description="The hardened swap check: the verdict with the answers' roles swapped."
    )
    cosine: float | None = None


class ItemResult(_Response):
    id: str | int | None = None
    group_id: str | int | None = None
    overall: float | None = Field(description="Null when an enabled component could not be scored.")
    scores: ComponentScores
    details: ItemDetails
    errors: dict[str, ComponentError] = Field(default_factory=dict)


class GroupStats(_Response):
    group_id: str | int
    size: int
    scored: int = Field(description="Members whose overall is not null.")
    mean: float | None
    std: float | None = Field(description="Population standard deviation of overall over scored members.")
    uniform: bool = Field(description="Every scored member got the same overall: no GRPO learning signal.")


class ClosedGroup(GroupStats):
    reason: Literal["size", "window", "evicted"] = Field(
        description="size: its declared group_size arrived; window: its window ended first; evicted: the oldest "
        "open group, closed early because too many groups were open."
    )


class PresetRates(_Response):
    """One preset's items over the service's rolling window (telemetry.window_s)."""

    items: int
    refusal_ratio: float | None = Field(description="Share of items refused (details.rejection set).")
    refusals: dict[str, int] = Field(description="Refused items by rule.")
    judge_yes_ratio: float | None = Field(description="Share of judged items whose first verdict was YES.")
    disagreement_ratio: float | None = Field(
        description="Share of judge YES whose embedding similarity is below the disagreement level: the two "
        "model signals disagreeing, the early sign of a policy that fools the judge."
    )
    alarm: bool = Field(description="The refusal ratio is above telemetry.refusal_alert_ratio.")


class GroupsSummary(_Response):
    open: int = Field(description="Groups gathering members now.")
    closed: dict[str, int] = Field(description="Groups closed since start, by reason (see ClosedGroup.reason).")
    degenerate: int = Field(description="Closed groups whose scored members all got the same overall.")
    degenerate_share: float | None
    recent: list[ClosedGroup] = Field(description="The most recently closed groups, newest last.")


class StatsResponse(_Response):
    window_s: float
    presets: dict[str, PresetRates]
    groups: GroupsSummary


class StageTimes(_Response):
    checks_s: float
    judge_s: float
    embed_s: float
    total_s: float


class Usage(_Response):
    items: int
    judge_pairs: int = Field(description="Distinct (answer, truth) pairs that needed a verdict.")
    judge_calls: int = Field(description="HTTP calls made to the judge, retries included.")
    judge_cache_hits: int
    texts_encoded: int
    embed_cache_hits: int
    seconds: StageTimes


class RewardResponse(_Response):
    preset: str = Field(
        description="'medix-r1' when the effective reward is the reference's, 'hardened' for the hardened "
        "preset; 'custom' / 'hardened-custom' when weights, threshold, components or tags were changed."
    )
    results: list[ItemResult]
    groups: list[GroupStats] = Field(default_factory=list)
    usage: Usage
    version: str | None = Field(default=None, description="The service's version.")
    config_hash: str | None = Field(
        default=None, description="Fingerprint of the judge, embedder and reward settings: log it with the run."
    )
