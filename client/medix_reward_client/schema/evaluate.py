"""The wire schema of `POST /evaluate`: the MediX-R1 evaluation protocol (a reference-based judge, rounds in one
conversation)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from medix_reward_client.schema.base import _Request, _Response

EvalKind = Literal["binary", "graded"]
Combine = Literal["majority", "mean", "last"]

# The 17 benchmarks of MediX-R1's evaluation (its eval/README.md) and how each is scored: report generation and
# summarisation 0-5, the rest binary. The service's evaluate.tasks / evaluate.tasks_file extend or override it.
MEDIX_R1_TASKS: dict[str, EvalKind] = {
    **dict.fromkeys(
        (
            "mmlu_clinical_knowledge", "mmlu_college_biology", "mmlu_college_medicine", "mmlu_medical_genetics",
            "mmlu_professional_medicine", "mmlu_anatomy", "medmcqa", "medqa", "usmle_sa", "pubmedqa",
            "slake_vqa", "rad_vqa", "path_vqa", "pmc_vqa", "pmc_vqa_hard",
        ),
        "binary",
    ),
    "mimic_cxr_report_summarization": "graded",
    "mimic_cxr_report_generation": "graded",
}  # fmt: skip


class EvaluateItem(_Request):
    """One model answer to grade against its reference answer."""

    question: str = Field(description="The question as the model saw it (choices included, for multiple choice).")
    reference: str = Field(description="The correct answer: for multiple choice the option's text or letter.")
    response: str = Field(description="The model's answer; anything up to a closing </think> / </thinking> is dropped.")
    task: str = Field(description="The benchmark, e.g. 'medqa' or 'mimic_cxr_report_generation'.")
    kind: EvalKind | None = Field(
        default=None,
        description="'binary' (0/1) or 'graded' (0-5 clinical quality). Default: the task table's kind for `task`.",
    )
    choices: list[str] | None = Field(
        default=None,
        description="Multiple-choice options, lettered A, B, … in order; default: read from a 'Choices:' block "
        "of 'A. text' lines in the question. With options, a clear letter or exact option text is scored by rule.",
    )
    id: str | int | None = Field(default=None, description="Echoed back in the result.")
    label: float | None = Field(
        default=None,
        description="The score the sample should get (binary 0/1, graded 0-5), when known: never shown to the "
        "judge, echoed in the result, and the report gives the judge's agreement with it.",
    )


class EvaluateOptions(_Request):
    rounds: int | None = Field(
        default=None, ge=1, le=9, description="Judge rounds per sample, in one conversation; default evaluate.rounds."
    )
    combine: Combine | None = Field(
        default=None,
        description="How rounds combine: 'majority' (binary: 1 iff more than half the rounds say 1; graded: the "
        "median), 'mean', or 'last'. Default: majority for binary, mean for graded (the reference's).",
    )
    judge_model: str | None = Field(
        default=None, description="A model the evaluation judge serves; default evaluate.judge_model."
    )
    rule: bool = Field(default=True, description="Score clear multiple-choice answers by rule, without the judge.")
    force: bool = Field(
        default=False,
        description="Grade even when the judge fails calibration (the response's `calibration` then says so, with "
        "`forced: true`); otherwise such a request is refused with 424 `judge_calibration`/`judge_order_bias`.",
    )


class EvaluateRequest(_Request):
    items: list[EvaluateItem] = Field(min_length=1)
    options: EvaluateOptions | None = None


class RoundResult(_Response):
    score: float | None = Field(description="The score this reply gave; null when it could not be read.")
    reply: str = Field(description="The judge's reply, as sent (first 2,000 characters).")
    cached: bool = False
    error: str | None = Field(default=None, description="Why the reply could not be read.")


class SampleError(_Response):
    code: str = Field(
        description="judge_unparseable (a round's reply was not the JSON asked for, twice), or a judge call's "
        "error: judge_timeout, judge_unreachable, judge_http_error, judge_bad_reply, judge_rejected_input"
    )
    message: str


class EvaluateResult(_Response):
    id: str | int | None = None
    label: float | None = Field(default=None, description="The item's `label`, echoed.")
    task: str
    kind: EvalKind
    score: float | None = Field(
        description="Binary: 0 or 1 (or the fraction under 'mean'); graded: 0-5. Null when the sample failed."
    )
    method: Literal["rule", "judge"] | None = Field(
        description="'rule': a multiple-choice answer matched without the judge; null when failed before any call."
    )
    rounds: list[RoundResult] = Field(default_factory=list, description="Every judge reply, retries included.")
    error: SampleError | None = Field(default=None, description="Why the sample has no score; never scored 0.")
    templates: str | None = Field(
        default=None, description="The id of the templates that graded it (the response's `templates_id`)."
    )


class EvaluateUsage(_Response):
    items: int
    judged: int = Field(description="Samples sent to the judge.")
    rule_decided: int = Field(description="Multiple-choice samples scored by rule.")
    judge_calls: int = Field(description="HTTP calls made to the judge, retries included.")
    judge_calls_saved: int = Field(description="Rounds the rule spared: rule_decided × rounds.")
    judge_cache_hits: int
    failed: int
    seconds: float
    calibration_calls: int = Field(default=0, description="Judge calls made to calibrate (not cached earlier).")


class Calibration(_Response):
    """How the judge graded the built-in items of known label, each asked in both reply orders."""

    kind: EvalKind
    items: int
    agreement: float = Field(description="Share of the verdicts (both orders) that agree with the known labels.")
    order_flips: float | None = Field(
        description="Share of items whose verdict changes with the reply order; null: not measured (a template "
        "without {reply_format} fixes the order)."
    )
    unreadable: int = Field(description="Verdicts the judge's replies did not give (counted as disagreeing).")
    passed: bool
    min_agreement: float
    max_order_flips: float
    forced: bool = Field(default=False, description="Failed, and the request's options.force graded anyway.")
    problem: str | None = Field(default=None, description="What failed, when it did.")


class EvaluateResponse(_Response):
    results: list[EvaluateResult]
    usage: EvaluateUsage
    protocol_version: str
    judge_model: str
    version: str | None = None
    calibration: list[Calibration] = Field(
        default_factory=list, description="Per kind sent to the judge; empty when calibration is off."
    )
    templates: dict[str, str] = Field(default_factory=dict, description="Role → template source and SHA-256 prefix.")
    templates_id: str | None = Field(default=None, description="One hash of the templates together.")
