"""The evaluation's pure rules: a judge's reply read strictly into a score, the rounds combined, and the
multiple-choice rule that scores a clear option without the judge. No I/O; evaluate.py runs the protocol with them."""

from __future__ import annotations

import json
import math
import re
import statistics
import string

from medix_reward_client.schema import Combine, EvalKind, EvaluateItem

_THINKING_END = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
# Linear on any text (tests/scoring/test_patterns.py): no lazy group before optional whitespace, which backtracks over
# a long run of spaces once per character (a 60,000-space option line took 9.8 s; a fence of 4,000, minutes).
# What these leave around their group is stripped in code.
_FENCE = re.compile(r"\A```(?:json)?(.*)```\Z", re.DOTALL | re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
_OPTION_LINE = re.compile(r"\s*\(?([A-Z])[.)]\s*(\S.*)")
_LETTER = re.compile(r"(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)\s*(?:is\s*)?:?\s*)?\(?([a-z])\)?[.:)]?")
_LETTER_AND_TEXT = re.compile(r"\(?([a-z])[.:)]\)?\s+(.+)", re.DOTALL)


class Unparseable(ValueError):
    """A judge reply that is not the JSON object the prompt asks for."""


def strip_reasoning(text: str) -> str:
    """What follows the last closing thinking tag (`</think>` or `</thinking>`), or all of it when there is none."""
    parts = _THINKING_END.split(text)
    return parts[-1].strip()


def parse_score(reply: str, kind: EvalKind) -> float:
    """The score of a judge reply, strictly: past any thinking block and one ```json fence, the reply must be
    one JSON object whose "score" is a number (not a string or boolean): 0 or 1 for binary, 0-5 for graded."""
    text = strip_reasoning(reply)
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except ValueError:
        raise Unparseable("not a JSON object") from None
    if not isinstance(value, dict) or "score" not in value:
        raise Unparseable('not a JSON object with "score"')
    score = value["score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise Unparseable('"score" is not a number')
    if kind == "binary" and score not in (0, 1):
        raise Unparseable('"score" is not 0 or 1')
    if kind == "graded" and not 0 <= score <= 5:
        raise Unparseable('"score" is not between 0 and 5')
    return float(score)


def combine(scores: list[float], kind: EvalKind, rule: Combine | None = None) -> float:
    """Rounds into one score: majority for binary (1 iff more than half say 1), mean for graded, by default."""
    rule = rule or ("majority" if kind == "binary" else "mean")
    if rule == "last":
        return scores[-1]
    if rule == "mean":
        return statistics.fmean(scores)
    if kind == "binary":
        return 1.0 if sum(scores) > len(scores) / 2 else 0.0
    return float(statistics.median(scores))


# -- multiple choice by rule ---------------------------------------------------------------------------------


def options_of(item: EvaluateItem) -> dict[str, str]:
    """Letter → option text: the item's `choices`, or the 'A. text' lines after the question's last 'Choices:'
    (the reference's layout), or the question's first run of such lines from A. Empty when there are none."""
    if item.choices is not None:
        return dict(zip(string.ascii_uppercase, item.choices, strict=False))
    text = item.question
    marker = text.lower().rfind("choices:")
    lines = text[marker + len("choices:") :].splitlines() if marker >= 0 else text.splitlines()
    options: dict[str, str] = {}
    for line in lines:
        match = _OPTION_LINE.fullmatch(line)
        expected = string.ascii_uppercase[len(options)] if len(options) < 26 else None
        if match and match.group(1) == expected:
            options[expected] = match.group(2).rstrip()
        elif options and line.strip():
            break  # the run of options ended
    return options if len(options) >= 2 else {}


def _norm(text: str) -> str:
    text = " ".join(text.split()).strip().strip("*`'\"").strip()
    return text.rstrip(".").strip().casefold()


def chosen_option(text: str, options: dict[str, str]) -> str | None:
    """The option a short answer names without doubt: a letter alone ('C', '(C)', 'Option C', 'The answer is C.'),
    an option's exact text, or a letter with that option's exact text ('C. Aspirin'). None when unclear."""
    said = _norm(text)
    texts = {_norm(option): letter for letter, option in options.items()}
    letters = {letter.casefold(): letter for letter in options}
    match = _LETTER.fullmatch(said)
    if match:
        return letters.get(match.group(1))
    if said in texts and len(texts) == len(options):  # option texts must be distinct to name one
        return texts[said]
    match = _LETTER_AND_TEXT.fullmatch(said)
    if match and match.group(1) in letters:
        letter = letters[match.group(1)]
        return letter if _norm(match.group(2)) == _norm(options[letter]) else None
    return None


def answer_block(response: str) -> str | None:
    """The text between the first <answer> and the first </answer> after it, as `<answer>(.*?)</answer>` would
    find it, in one pass (that pattern is quadratic on many openings without a close)."""
    opened = _ANSWER_OPEN.search(response)
    closed = _ANSWER_CLOSE.search(response, opened.end()) if opened else None
    return response[opened.end() : closed.start()] if opened and closed else None


def rule_score(item: EvaluateItem, response: str) -> float | None:
    """1 or 0 when the answer and the reference each name an option clearly; None: the judge decides."""
    options = options_of(item)
    if not options:
        return None
    correct = chosen_option(item.reference, options)
    if correct is None:
        return None
    block = answer_block(response)
    given = chosen_option(block if block is not None else response, options)
    return None if given is None else float(given == correct)
