"""The scoring rule, pure: which reward applies to a request, and, given a checked item, the judge's
verdict and the embedding similarity, its component scores, details and errors.

A preset is a value (`EffectiveReward`) handed to these functions; the pipeline only gathers verdicts
and vectors. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from medix_reward.judge.prompts import REFERENCE_PROMPT_VERSION, STRICT_PROMPT_VERSION, JudgeAsk
from medix_reward.judge.types import JudgeError, Verdict
from medix_reward.scoring.checks import (
    CheckedItem,
    Tags,
    check_item,
    clean_answer,
    compose,
    modality_tag,
    split_ground_truth,
)
from medix_reward.scoring.initialisms import is_initialism
from medix_reward.scoring.screening_rules import WRONG_BY_RULE
from medix_reward.settings import NO_DEFENCES, DefenceSettings, RewardSettings
from medix_reward_client.schema import (
    COMPONENTS,
    Component,
    ComponentError,
    ComponentScores,
    ItemDetails,
    ItemResult,
    Preset,
    RewardItem,
    RewardOptions,
    Weights,
)

_REFERENCE = RewardSettings()

Pair = tuple[str, str]  # (predicted answer, true answer)


@dataclass(frozen=True)
class EffectiveReward:
    """Everything that decides a request's scores, after per-request options."""

    tags: Tags
    weights: Weights
    embed_threshold: float
    components: frozenset[Component]
    preset: str
    defences: DefenceSettings = NO_DEFENCES

    @property
    def judge_ask(self) -> JudgeAsk:
        version = STRICT_PROMPT_VERSION if self.defences.strict_judge else REFERENCE_PROMPT_VERSION
        hardened = self.preset in ("hardened", "hardened-custom")  # medix-r1 and custom: the reference's request
        return JudgeAsk(version, self.defences.neutralise_special_tokens, self.defences.soft_score, truncate=hardened)

    @property
    def needs_similarity(self) -> bool:
        return "accuracy_embed" in self.components or (
            "accuracy_llm" in self.components and self.defences.semantic_floor is not None
        )

    def fingerprint(self) -> dict[str, object]:
        return {
            "preset": self.preset,
            "prompt_version": self.judge_ask.prompt_version,
            "defences": self.defences.model_dump(),
            "tags": [self.tags.thinking, self.tags.answer],
            "weights": self.weights.model_dump(),
            "embed_threshold": self.embed_threshold,
            "components": sorted(self.components),
        }


def effective_reward(
    settings: RewardSettings, options: RewardOptions | None, hardened: DefenceSettings
) -> EffectiveReward:
    """The reward a request gets: the settings' preset and values, then the request's options. `preset` says
    which preset and whether anything deciding a score differs from that preset's defaults."""
    weights, threshold, components = settings.weights, settings.embed_threshold, settings.components
    preset: Preset = settings.preset
    if options is not None:
        if options.preset is not None:
            preset = options.preset
        if options.weights is not None:
            weights = weights.model_copy(update=options.weights.model_dump(exclude_none=True))
        if options.embed_threshold is not None:
            threshold = options.embed_threshold
        if options.components is not None:
            components = options.components
    tags = Tags(settings.thinking_tag, settings.answer_tag)
    is_default = (
        tags == Tags(_REFERENCE.thinking_tag, _REFERENCE.answer_tag)
        and weights == _REFERENCE.weights
        and threshold == _REFERENCE.embed_threshold
        and set(components) == set(COMPONENTS)
    )
    if preset == "hardened":
        name = "hardened" if is_default else "hardened-custom"
        return EffectiveReward(tags, weights, threshold, frozenset(components), name, hardened)
    return EffectiveReward(tags, weights, threshold, frozenset(components), "medix-r1" if is_default else "custom")


def true_answer(item: RewardItem) -> tuple[str | None, str]:
    """(modality tag or None, answer) from either ground-truth form."""
    if item.ground_truth is not None:
        return split_ground_truth(item.ground_truth)
    assert item.answer is not None  # the schema guarantees one of the two forms
    return (modality_tag(item.modality) if item.modality else None), clean_answer(item.answer)


def check(item: RewardItem, reward: EffectiveReward) -> CheckedItem:
    true_modality, answer = true_answer(item)
    defences = reward.defences
    return check_item(
        item.response, answer, true_modality, reward.tags,
        strict_format=defences.strict_format, screen_answers=defences.screen_answers,
        screening=defences.screening,
    )  # fmt: skip


def model_pair(checked: CheckedItem) -> Pair | None:
    """The pair the judge and the embedder must see, or None when a shortcut decides without them."""
    return None if checked.shortcut is not None else (checked.predicted_answer, checked.true_answer)


def score_item(
    item: RewardItem,
    c: CheckedItem,
    reward: EffectiveReward,
    verdict: Verdict | JudgeError | None,
    similarity: float | None,
    swapped: Verdict | JudgeError | None = None,
) -> ItemResult:
    """One item's result. `verdict` and `similarity` are None when no model was asked (shortcut, or the
    component is off); `swapped` is the swap check's verdict, asked only to confirm a YES. A JudgeError
    becomes a null accuracy_llm with its reason, never a 0."""
    scores: dict[Component, float | None] = dict.fromkeys(COMPONENTS)
    errors: dict[str, ComponentError] = {}
    judged: dict[str, object] = {"rejection": c.rejection}  # the judge's and the embedder's part of the details
    on = reward.components
    if "format" in on:
        scores["format"] = c.format
    if "modality" in on:
        scores["modality"] = c.modality
        if c.modality is None:
            errors["modality"] = ComponentError(
                code="no_true_modality",
                message="the ground truth names no modality: give '<TAG> answer', or `modality`, "
                "or leave modality out of `components`",
            )
    shortcut_score = None if c.shortcut is None else float(c.shortcut == "exact_match")
    if "accuracy_llm" in on:
        if shortcut_score is not None:
            scores["accuracy_llm"] = shortcut_score
        elif verdict is not None:
            pair = (c.predicted_answer, c.true_answer)
            scores["accuracy_llm"], error = _judge_score(reward.defences, verdict, similarity, swapped, judged, pair)
            if error is not None:
                errors["accuracy_llm"] = error
    if similarity is not None:
        judged["cosine"] = similarity
    if "accuracy_embed" in on:
        if shortcut_score is not None:
            scores["accuracy_embed"] = shortcut_score
        elif similarity is not None:
            scores["accuracy_embed"] = 1.0 if similarity >= reward.embed_threshold else 0.0
    # A wrong answer decided by rule (a bare Yes/No of the wrong side) keeps what a wrong answer keeps, so that a
    # hedge on a closed question pays less than committing to the wrong side.
    attack = c.shortcut == "rejected" and c.rejection not in WRONG_BY_RULE
    if attack and reward.defences.refusal_earns_nothing:
        scores.update(dict.fromkeys(on, 0.0))  # a refused answer earns nothing, format and modality included
        errors.pop("modality", None)  # decided without the true modality
    details = ItemDetails(
        predicted_answer=c.predicted_answer,
        true_answer=c.true_answer,
        predicted_modality=c.predicted_modality,
        true_modality=c.true_modality,
        shortcut=c.shortcut,
        **judged,
    )
    return ItemResult(
        id=item.id,
        group_id=item.group_id,
        overall=compose(scores, reward.weights, reward.components),
        scores=ComponentScores(**scores),
        details=details,
        errors=errors,
    )


def _judge_score(
    defences: DefenceSettings,
    verdict: Verdict | JudgeError,
    similarity: float | None,
    swapped: Verdict | JudgeError | None,
    details: dict[str, object],
    pair: Pair,
) -> tuple[float | None, ComponentError | None]:
    """accuracy_llm from the verdict, then the hardened checks that may take a YES back: the swap check and
    the semantic gate (which spares the truth's initialism). Soft scoring reports P(YES) instead of 0/1 where
    nothing took the YES back."""
    if isinstance(verdict, JudgeError):
        return None, ComponentError(code=verdict.code, message=verdict.message)
    details.update(judge_verdict="YES" if verdict.yes else "NO", judge_reply=verdict.reply,
                   judge_p_yes=verdict.p_yes, judge_cached=verdict.cached,
                   judge_truncated=verdict.truncated)  # fmt: skip
    if defences.soft_score and verdict.p_yes is None:
        message = "soft scoring needs the judge's logprobs, and its reply had none"
        return None, ComponentError(code="judge_no_logprobs", message=message)
    score = (verdict.p_yes if defences.soft_score else 1.0 if verdict.yes else 0.0) or 0.0
    if not verdict.yes:
        return score, None
    if defences.swap_check:
        if isinstance(swapped, JudgeError):
            return None, ComponentError(code=swapped.code, message=f"swap check: {swapped.message}")
        assert swapped is not None  # the pipeline asks the swap check for every YES
        details["judge_swap_verdict"] = "YES" if swapped.yes else "NO"
        if not swapped.yes:
            details["rejection"] = "swap_disagrees"
            return 0.0, None
    if (
        defences.semantic_floor is not None
        and (similarity is None or similarity < defences.semantic_floor)
        and not (defences.semantic_floor_spares_initialisms and is_initialism(*pair))
    ):
        details["rejection"] = "semantic_gate"
        return 0.0, None
    return score, None
