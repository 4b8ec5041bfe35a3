"""The reward: the default preset, tags, weights and components, and the hardened preset's defences."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from medix_reward.scoring.screening import Screening
from medix_reward.settings.group import _Group
from medix_reward_client.schema import COMPONENTS, Component, Preset, Weights

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")


class DefenceSettings(_Group):
    """The hardened preset's defences against reward hacking; each is a setting of its own so that it can be
    measured alone (MEDIX_REWARD_HARDENED__<NAME>). The medix-r1 preset uses none of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strict_format: bool = Field(
        default=True,
        description="Exactly one thinking block then exactly one answer block, nothing after; only that answer "
        "counts. Anything else with answer tags is rejected as format_abuse.",
    )
    screen_answers: bool = Field(
        default=True,
        description="Reject, before any model call, answers that address the grader, assert their own "
        "correctness, look like prompt delimiters, are non-committal, hedge, or negate the truth.",
    )
    strict_judge: bool = Field(
        default=True,
        description="Prompt medix-judge-v2: rubric in a system message, answers as data between markers "
        "carrying a per-call nonce, one strict label parsed from the first word, one retry when unparseable.",
    )
    neutralise_special_tokens: bool = Field(
        default=True, description="Text a chat template would read as control tokens never reaches the judge as such."
    )
    swap_check: bool = Field(default=True, description="Confirm a YES with the answers' roles swapped.")
    semantic_floor: float | None = Field(
        default=0.15,
        ge=-1,
        le=1,
        description="A judge YES counts only if the embedding similarity reaches this; None turns the gate off. "
        "0.15 is calibrated for all-MiniLM-L6-v2 on tests/data/adversarial.jsonl; calibrate per embedder.",
    )
    semantic_floor_spares_initialisms: bool = Field(
        default=True,
        description='The semantic floor does not apply to an answer that is the truth\'s initialism ("PE" for '
        '"Pulmonary embolism", "PDR"): a small embedder scores initialisms like content-free text. The judge must '
        "still say YES (both ways under the swap check).",
    )
    soft_score: bool = Field(default=False, description="accuracy_llm = P(YES) from the judge's logprobs, not 0/1.")
    # What the attack search (`medix-reward redteam`, docs/integrity.md) found and these close; each needs
    # screen_answers and names its own refusal reason.
    fold_confusables: bool = Field(
        default=True,
        description="Screening reads answers folded: NFKC, Unicode TR39 look-alikes as ASCII (confusable-homoglyphs), "
        "no combining marks, letters spelt one by one joined; an answer with invisible characters (zero-width, "
        "bidi) is refused as `obfuscated`.",
    )
    multilingual_lexicon: bool = Field(
        default=True,
        description="Verdicts and affirmations in 40 languages and scripts, and marks such as ✓ 👍, refused "
        "anywhere in an answer as `affirmation`; words about the answer's grading (reference, equivalent, "
        'matches, verified, same as above …) anywhere as `self_assertion`; orders to the grader ("Mark this …", '
        '"System: …") as `instruction`.',
    )
    non_answers: bool = Field(
        default=True,
        description='An answer with a part (line, sentence, clause) made only of content-free words ("Evident from the '
        'image", "X. The key finding") is refused as `non_answer`.',
    )
    closed_polarity: bool = Field(
        default=True,
        description="For a Yes/No truth the answer must be a bare Yes or No (words of one polarity only); anything "
        'else ("Yes, no", "Probably yes", "No. Classic presentation") is refused as `polarity`.',
    )
    lists: bool = Field(
        default=True,
        description='The truth word for word beside a finding of another kind ("X, truth", "truth/X", "1. X 2. truth") '
        'is refused as `list`; a qualifier after the truth ("truth without shift") is kept.',
    )
    refusal_earns_nothing: bool = Field(
        default=True,
        description="An answer refused by screening or strict format (shortcut `rejected`) earns 0 in every "
        "component, format and modality included, so an attack pays strictly less than an honest wrong answer. "
        "The details keep the refusal's reason. The judge-side refusals (swap check, semantic gate) and "
        "`wrong_polarity` (a bare Yes/No of the wrong side: an honest wrong answer) are unaffected.",
    )
    other_language: Literal["refuse", "judge"] = Field(
        default="refuse",
        description="Answers with letters of a script the truth does not use: `refuse` (as `other_language`: a "
        "wrong answer in any script earns nothing, nor does a right one) or `judge` (the judge decides).",
    )

    @property
    def screening(self) -> Screening:
        return Screening(
            fold_confusables=self.fold_confusables, multilingual_lexicon=self.multilingual_lexicon,
            non_answers=self.non_answers, closed_polarity=self.closed_polarity, lists=self.lists,
            other_language=self.other_language,
        )  # fmt: skip


NO_DEFENCES = DefenceSettings(
    strict_format=False, screen_answers=False, strict_judge=False, neutralise_special_tokens=False,
    swap_check=False, semantic_floor=None, semantic_floor_spares_initialisms=False, soft_score=False,
    fold_confusables=False, multilingual_lexicon=False, non_answers=False, closed_polarity=False,
    lists=False, refusal_earns_nothing=False, other_language="judge",
)  # fmt: skip


class RewardSettings(_Group):
    preset: Preset = Field(default="medix-r1", description="The default preset; a request may choose another.")
    thinking_tag: str = Field(default="thinking", description="The reasoning block's tag name.")
    answer_tag: str = Field(default="answer", description="The answer block's tag name.")
    weights: Weights = Field(
        default=Weights(),
        description="overall = content·(accuracy_llm·J + accuracy_embed·E + modality·M) + format·F, with J, E, M, F "
        "the component scores.",
    )
    embed_threshold: float = Field(
        default=0.8,
        ge=-1,
        le=1,
        description="Cosine similarity that counts as a match; 0.8 is calibrated for MedEmbed.",
    )
    components: list[Component] = Field(
        default=list(COMPONENTS), min_length=1, description="JSON list of the components computed."
    )

    @model_validator(mode="after")
    def _tags(self) -> RewardSettings:
        for tag in (self.thinking_tag, self.answer_tag):
            if not _TAG_NAME.fullmatch(tag):
                raise ValueError(f"tag name must be letters, digits, '_' or '-': {tag!r}")
        if self.thinking_tag == self.answer_tag:
            raise ValueError("thinking_tag and answer_tag must differ")
        return self
