"""The MediX-R1 evaluation protocol, served: a reference-based judge grades a checkpoint's answers.

Per sample: the model's reasoning is dropped (everything up to the last `</think>` / `</thinking>`); a
multiple-choice answer that names an option clearly (its letter or its exact text) is scored by rule;
anything else goes to the judge, which sees the question, the reference and the answer and replies with
`{"score": N}` (binary 0/1, or graded 0-5 for reports and summaries), `rounds` times in one conversation
(each round asks it to check its previous judgement); the rounds combine by majority (binary) or mean
(graded). A reply that is not that JSON object is asked for once more; a second bad reply fails the
sample with the reason: never a 0. The prompts are templates (evaluation/templates.py: the built-in ones, or a
user's files); the reply instruction lists the allowed values in an order drawn per sample. Before a kind's
samples, the judge is calibrated on items of known label (calibration.py). docs/evaluation.md has it all.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

from medix_reward import __version__
from medix_reward.api.errors import InvalidField, JudgeUncalibrated, judge_down, raise_if_judge_down
from medix_reward.evaluation import calibration
from medix_reward.evaluation.rules import (
    Unparseable,
    combine,
    parse_score,
    rule_score,
    strip_reasoning,
)
from medix_reward.evaluation.templates import BUILTIN, TemplateSet, reply_format
from medix_reward.judge.client import JudgeClient
from medix_reward.judge.types import JUDGE_DOWN_CODES, JudgeError, JudgeStats
from medix_reward.settings import EvaluateSettings
from medix_reward_client.schema import (
    MEDIX_R1_TASKS,
    Calibration,
    Combine,
    EvalKind,
    EvaluateItem,
    EvaluateOptions,
    EvaluateRequest,
    EvaluateResponse,
    EvaluateResult,
    EvaluateUsage,
    RoundResult,
    SampleError,
)

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "medix-eval-v2"  # v2: the reply values in an order drawn per sample; calibration first

TASKS = MEDIX_R1_TASKS  # the 17 benchmarks' kinds; evaluate.tasks / evaluate.tasks_file extend it

_REPLY_CHARS = 2000


# -- the judge, round by round -------------------------------------------------------------------------------


def draw_order(item: EvaluateItem, response: str) -> bool:
    """Whether this sample's reply instruction lists its values in the flipped order: drawn from the sample's
    texts, so half the samples get each order and the same sample always gets the same (the cache holds)."""
    digest = hashlib.sha256("\x00".join((item.question, item.reference, response)).encode()).digest()
    return bool(digest[0] & 1)


def first_message(item: EvaluateItem, kind: EvalKind, response: str, templates: TemplateSet = BUILTIN,
                  flipped: bool = False) -> dict[str, str]:  # fmt: skip
    prompt = templates.prompt(kind).render(kind=kind, flipped=flipped, question=item.question,
                                           reference=item.reference, response=response)  # fmt: skip
    return {"role": "user", "content": prompt}


def recheck_message(kind: EvalKind, templates: TemplateSet = BUILTIN, flipped: bool = False) -> dict[str, str]:
    return {"role": "user", "content": templates.recheck.render(kind=kind, flipped=flipped)}


def correction_message(kind: EvalKind, flipped: bool) -> dict[str, str]:
    """After an unreadable reply, whatever the templates: the service's own, with the sample's order."""
    return {"role": "user", "content": f"That reply is not the JSON object asked for. {reply_format(kind, flipped)}"}


@dataclass
class _Tally:
    stats: JudgeStats
    rule_decided: int = 0
    judged: int = 0


@dataclass(frozen=True)
class _Grading:
    """How a request's samples are graded: what a calibration must have been run with to vouch for them."""

    rounds: int
    model: str
    combine: Combine | None


class Evaluator:
    """Grades samples with the evaluation judge; `judge` may be the reward's client (same replicas) or its own.
    Before a kind's first sample it calibrates the judge on the built-in items, once per model, rounds and
    combination (calibration.py); a judge that fails refuses the request unless `options.force`."""

    def __init__(self, settings: EvaluateSettings, judge: JudgeClient, judge_model: str):
        self.settings = settings
        self.judge = judge
        self.judge_model = judge_model
        self.tasks: dict[str, EvalKind] = {**TASKS, **settings.tasks}
        self.templates = settings.templates()
        self._calibrations: dict[tuple[EvalKind, _Grading], asyncio.Task[tuple[Calibration, int]]] = {}

    def kinds(self, request: EvaluateRequest) -> list[EvalKind]:
        """Each item's kind, from the item or the task table; an unknown task without a kind is the caller's 422."""
        kinds = []
        for i, item in enumerate(request.items):
            kind = item.kind or self.tasks.get(item.task)
            if kind is None:
                param = f"items[{i}].kind"
                message = f"{param}: task {item.task[:80]!r} is not in the task table; give `kind` (binary or graded)"
                raise InvalidField(message, param=param, code="unknown_task")
            kinds.append(kind)
        return kinds

    async def evaluate(self, request: EvaluateRequest) -> EvaluateResponse:
        started = time.perf_counter()
        kinds = self.kinds(request)
        options = request.options or EvaluateOptions()
        grading = _Grading(rounds=options.rounds or self.settings.rounds,
                           model=options.judge_model or self.judge_model, combine=options.combine)  # fmt: skip
        decided = [rule_score(item, strip_reasoning(item.response)) if options.rule and kind == "binary" else None
                   for item, kind in zip(request.items, kinds, strict=True)]  # fmt: skip
        judged_kinds = sorted({kind for kind, score in zip(kinds, decided, strict=True) if score is None})
        calibrations, calibration_calls = await self.calibrated(judged_kinds, grading, options.force)
        tally = _Tally(JudgeStats())
        results = await asyncio.gather(
            *(self._sample(item, kind, rule, grading, tally)
              for item, kind, rule in zip(request.items, kinds, decided, strict=True))
        )  # fmt: skip
        if (error := _every_sample_failed(results)) is not None:
            await raise_if_judge_down(self.judge.health, error.code, error.message)
        usage = EvaluateUsage(
            items=len(results),
            judged=tally.judged,
            rule_decided=tally.rule_decided,
            judge_calls=tally.stats.calls,
            judge_calls_saved=tally.rule_decided * grading.rounds,
            judge_cache_hits=tally.stats.cache_hits,
            failed=sum(result.error is not None for result in results),
            seconds=time.perf_counter() - started,
            calibration_calls=calibration_calls,
        )
        return EvaluateResponse(
            results=list(results), usage=usage, protocol_version=PROTOCOL_VERSION, judge_model=grading.model,
            version=__version__, calibration=calibrations, templates=self.templates.describe(),
            templates_id=self.templates.id,
        )  # fmt: skip

    # -- calibration ------------------------------------------------------------------------------------------

    async def calibrated(self, kinds: list[EvalKind], grading: _Grading,
                         force: bool) -> tuple[list[Calibration], int]:  # fmt: skip
        """Each kind's calibration (run once per kind and grading, shared by concurrent requests) and the judge
        calls the calibrations this request started made; JudgeUncalibrated when one failed and the request does
        not force."""
        if not self.settings.calibration:
            return [], 0
        outcomes, calls = [], 0
        started = {kind: (kind, grading) not in self._calibrations for kind in kinds}
        for kind in kinds:  # every kind's calibration runs at once
            if started[kind]:
                self._calibrations[(kind, grading)] = asyncio.ensure_future(self._calibrate(kind, grading))
        for kind in kinds:
            key = (kind, grading)
            try:
                outcome, made = await asyncio.shield(self._calibrations[key])
            except JudgeError as exc:
                self._calibrations.pop(key, None)  # the judge was down, not wrong: calibrate again next time
                raise judge_down(exc.code, exc.message) from None
            outcomes.append(outcome)
            calls += made if started[kind] else 0
        failed = [result for result in outcomes if not result.passed]
        if failed and not force:
            biased = any(r.order_flips is not None and r.order_flips > r.max_order_flips for r in failed)
            code = "judge_order_bias" if biased else "judge_calibration"
            problems = "; ".join(r.problem or "" for r in failed)
            advice = "use a better judge or templates, or options.force (--force) to grade anyway"
            message = f"{problems}. The table would measure the judge, not the answers; {advice}"
            raise JudgeUncalibrated(message, code=code)
        return [result.model_copy(update={"forced": not result.passed}) for result in outcomes], calls

    async def _calibrate(self, kind: EvalKind, grading: _Grading) -> tuple[Calibration, int]:
        """The known items graded as samples are, in both reply orders when the prompt has {reply_format}."""
        known = calibration.ITEMS[kind]
        orders = [False, True] if self.templates.prompt(kind).has_reply_format else [False]
        stats = JudgeStats()
        tally = _Tally(stats)
        items = [EvaluateItem(question=k.question, reference=k.reference, response=k.response, task="calibration",
                              kind=kind) for k in known]  # fmt: skip
        results = await asyncio.gather(*(self._judged(item, kind, grading, tally, flipped)
                                         for flipped in orders for item in items))  # fmt: skip
        errors = [r.error for r in results if r.error is not None and r.error.code != "judge_unparseable"]
        if errors:
            raise JudgeError(errors[0].code, f"calibration could not finish: {errors[0].message}")
        scores = [r.score for r in results]
        flipped = scores[len(items) :] if len(orders) == 2 else None
        summary = calibration.summarise(kind, known, scores[: len(items)], flipped, self.settings.min_agreement,
                                        self.settings.max_order_flips)  # fmt: skip
        log.info("evaluation judge %s calibration (%s): %s", grading.model, kind, summary.model_dump_json())
        return summary, stats.calls

    # -- samples ----------------------------------------------------------------------------------------------

    async def _sample(self, item: EvaluateItem, kind: EvalKind, decided: float | None, grading: _Grading,
                      tally: _Tally) -> EvaluateResult:  # fmt: skip
        if decided is not None:
            tally.rule_decided += 1
            return EvaluateResult(id=item.id, label=item.label, task=item.task, kind=kind, score=decided,
                                  method="rule")  # fmt: skip
        return await self._judged(item, kind, grading, tally, draw_order(item, strip_reasoning(item.response)))

    async def _judged(self, item: EvaluateItem, kind: EvalKind, grading: _Grading, tally: _Tally,
                      flipped: bool) -> EvaluateResult:  # fmt: skip
        response = strip_reasoning(item.response)
        result = EvaluateResult(id=item.id, label=item.label, task=item.task, kind=kind, score=None, method="judge",
                                templates=self.templates.id)  # fmt: skip
        tally.judged += 1
        messages = [first_message(item, kind, response, self.templates, flipped)]
        scores: list[float] = []
        try:
            for number in range(grading.rounds):
                if number:
                    messages.append(recheck_message(kind, self.templates, flipped))
                scores.append(await self._round(messages, kind, grading.model, tally.stats, result.rounds, flipped))
        except JudgeError as exc:
            result.error = SampleError(code=exc.code, message=exc.message)
            return result
        except Unparseable as exc:
            message = f"round {len(scores) + 1}: the judge's reply was not the JSON asked for, twice ({exc})"
            result.error = SampleError(code="judge_unparseable", message=message)
            return result
        result.score = combine(scores, kind, grading.combine)
        return result

    async def _round(
        self, messages: list[dict[str, str]], kind: EvalKind, model: str, stats: JudgeStats, log: list[RoundResult],
        flipped: bool,
    ) -> float:  # fmt: skip
        """One round's score; an unreadable reply is followed by a correction and asked once more."""
        for attempt in range(2):
            reply, cached = await self.judge.chat(
                messages, stats, model=model, max_tokens=self.settings.max_tokens, timeout_s=self.settings.timeout_s
            )
            messages.append({"role": "assistant", "content": reply})
            try:
                score = parse_score(reply, kind)
            except Unparseable as exc:
                log.append(RoundResult(score=None, reply=reply[:_REPLY_CHARS], cached=cached, error=str(exc)))
                if attempt:
                    raise
                messages.append(correction_message(kind, flipped))
                continue
            log.append(RoundResult(score=score, reply=reply[:_REPLY_CHARS], cached=cached))
            return score
        raise AssertionError("unreachable")


def _every_sample_failed(results: tuple[EvaluateResult, ...] | list[EvaluateResult]) -> SampleError | None:
    """The first error, when nothing was scored and a sample failed for a reason that may be the judge's own: as
    /reward's `every_call_failed`, whether that makes the judge down is the replicas' health to say."""
    if any(result.score is not None for result in results):
        return None
    return next((r.error for r in results if r.error is not None and r.error.code in JUDGE_DOWN_CODES), None)
