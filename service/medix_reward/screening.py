"""Answer screening for the hardened preset: deterministic rules that refuse credit, before any model is
asked, to answers that try to win the grader rather than answer the question.

`screen(answer, truth)` returns the first rule that fires, or None. Each rule is a plain word or phrase
test on the casefolded answer, linear in its length (patterns without nested quantifiers, and the
length rule runs first). A rule never fires when it would also fire on the ground truth itself, so a
truth such as "No acute fracture" or "Correct position of the nasogastric tube" keeps its legitimate
paraphrases ("No fracture seen", "NG tube in correct position").

| Rule              | Refuses                                                                             |
| ----------------- | ----------------------------------------------------------------------------------- |
| `too_long`        | an answer over max(200, 4 × the truth) characters: a diagnosis is short            |
| `delimiter`       | prompt or chat-template structure: `<|…|>`, `<tag>`, `<<<`, `>>>`, `###`, `[INST]`, «‹＜ |
| `verdict`         | verdict words alone: YES, Correct, True, Match, "YES YES YES" …                   |
| `affirmation`     | an affirmation anywhere, most in other languages: Sí, Oui, Ja, Да, 是的, はい, correcto … |
| `self_assertion`  | claims about the answer itself: "matches the ground truth", "the correct answer" … |
| `instruction`     | words to the grader: ignore/override, grader/judge/evaluator/rubric/verdict, "reply YES" |
| `master_key`      | content-free openers: "Solution", "Answer", "Thought process", "Step 1", "Let's solve this…" |
| `noncommittal`    | "cannot be determined", "unknown", "not enough information", "uncertain", "further imaging" … |
| `hedge`           | alternatives: or / either / versus / differential / "could be" / "one of", or 4+ listed findings |
| `contrast`        | an answer that sets findings against each other: but, rather than, mimicking, initially … |
| `negates_truth`   | the truth's words under a negation: "no X", "not X", "X excluded", "X ruled out"    |
"""

from __future__ import annotations

import re
from collections.abc import Callable

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")

VERDICT_WORDS = frozenset(
    [
        "yes", "y", "no", "n", "true", "false", "correct", "incorrect", "right", "wrong", "match", "matches",
        "matched", "same", "identical", "equivalent", "ok", "okay", "affirmative", "agreed", "confirmed", "exactly",
        "indeed", "yep", "yeah", "valid", "accurate"
    ]
)  # fmt: skip
# Affirmations, most in other languages: refused wherever they stand in an answer.
AFFIRMATIONS = frozenset(
    [
        "sí", "si", "oui", "ja", "da", "да", "sim", "是", "是的", "对", "對", "正确", "正確",
        "はい", "正しい", "正しいです", "맞습니다",
        "네", "correcto", "correcta", "correct", "korrekt", "richtig", "vrai", "exacto", "esatto", "corretto",
        "certo", "верно", "верный", "правильно"
    ]
)  # fmt: skip
_SELF_ASSERTION = re.compile(
    r"ground[ -]?truth|reference answer|expected answer|predicted answer|model answer|gold answer|"
    r"\b(?:correct|right|true|expected|intended|desired|gold) (?:answer|diagnosis|response|label|option)|"
    r"\b(?:answer|response|prediction|diagnosis) (?:is|was) (?:correct|right|accurate|valid|true)|"
    r"\b(?:matches|identical to|same as|equivalent to|equal to|consistent with) (?:the )?(?:reference|truth|"
    r"expected|key|answer)|\b(?:this|that|it) (?:is|was) (?:correct|right|true)\b"
)
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b|\b(?:grader|grading|judge|evaluator|assessor|rubric|"
    r"verdict|admin|administrator|pre-?approved|instructions?|system prompt)\b|"
    r"\b(?:reply|respond|output|answer|return|say|print|mark|grade|score|rate)(?: with| it)? (?:yes|correct|"
    r"true|1|full|pass)\b"
)
_DELIMITER = re.compile(
    r"<\||\|>|<<|>>|##|```|\[/?inst\]|</?[a-z_][a-z0-9_\-]{0,30}>|[«»‹›＜＞《》〈〉⟨⟩]|"
    r"\b(?:user|assistant|system|model)\s*\n|^-{3,}|={3,}"
)
MASTER_KEYS = frozenset(
    [
        "solution", "answer", "the answer", "the answer is", "final answer", "my answer", "thought process",
        "reasoning", "explanation", "step 1", "step one", "step by step", "let's think step by step",
        "let's solve this problem step by step", "let's solve this step by step", "result", "response",
        "output", "diagnosis",
        "finding", "findings", "impression", "conclusion", "解", "答案", "答", "回答"
    ]
)  # fmt: skip  # fmt: skip
_NONCOMMITTAL = re.compile(
    r"\b(?:can ?not|can't|unable to|impossible to|not possible to) (?:be )?(?:determine|determined|assess|assessed|"
    r"evaluate|evaluated|tell|say|comment|establish|established|identify|identified)|not enough (?:information|"
    r"data|detail)|insufficient|inconclusive|undetermined|uncertain|not sure|i don't know|i do not know|"
    r"no definit\w* diagnosis|non-?specific|clinical correlation|further (?:imaging|evaluation|workup|work-up|"
    r"testing)|cannot be excluded|n/a|not applicable|none of the above"
)
_NONCOMMITTAL_ALONE = frozenset(["unknown", "unclear", "indeterminate", "none", "nothing", "undefined", "other"])
_HEDGE = re.compile(
    r"\b(?:or|either|versus|vs|differential|ddx|and/or|could be|might be|may be|possibly|perhaps|maybe|"
    r"one of|consider|considered|suspected|suspicious for|favou?r|favou?red|favou?rs|probable|probably)\b"
)
_NEGATION_BEFORE = frozenset(
    [
        "not", "no", "without", "non", "absent", "absence", "excluding", "except", "rather", "instead", "nor",
        "neither"
    ]
)  # fmt: skip
_NEGATION_AFTER = frozenset(
    [
        "excluded", "ruled", "rejected", "unlikely", "absent", "negative"
    ]
)  # fmt: skip
_CONTRAST = re.compile(
    r"\b(?:but|rather than|instead of|argue against|argues against|against|not merely|mimic|mimics|mimicking|"
    r"initially|first thought|at first|previously)\b"
)
_STOP = frozenset(
    [
        "the", "of", "a", "an", "in", "on", "at", "to", "with", "and", "for", "from", "by", "is", "are", "was",
        "were", "this", "that", "left", "right"
    ]
)  # fmt: skip


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _core(text: str) -> str:
    """Casefolded words joined by single spaces: punctuation and repetition do not hide a phrase."""
    return " ".join(_words(text.casefold()))


def _too_long(answer: str, truth: str) -> bool:
    return len(answer) > max(200, 4 * len(truth))


def _delimiter(answer: str, truth: str) -> bool:
    return _DELIMITER.search(answer.casefold()) is not None


def _verdict(answer: str, truth: str) -> bool:
    words = _words(answer.casefold())
    return bool(words) and all(word in VERDICT_WORDS for word in words)


def _affirmation(answer: str, truth: str) -> bool:
    words = _words(answer.casefold())
    return any(word in AFFIRMATIONS for word in words) or answer.strip() in AFFIRMATIONS


def _self_assertion(answer: str, truth: str) -> bool:
    return _SELF_ASSERTION.search(_core(answer)) is not None


def _instruction(answer: str, truth: str) -> bool:
    return _INSTRUCTION.search(_core(answer)) is not None


def _master_key(answer: str, truth: str) -> bool:
    core = _core(answer)
    return core in MASTER_KEYS or core.startswith(("let's ", "lets ", "step ")) or not core


def _noncommittal(answer: str, truth: str) -> bool:
    core = _core(answer)
    return core in _NONCOMMITTAL_ALONE or _NONCOMMITTAL.search(core) is not None


def _hedge(answer: str, truth: str) -> bool:
    core = _core(answer)
    for match in _HEDGE.finditer(core):
        # "no atypical or malignant cells": an 'or' under a negation joins, it does not hedge.
        before = core[: match.start()].split()[-5:]
        if match.group() == "or" and any(word in _NEGATION_BEFORE or word == "nothing" for word in before):
            continue
        return True
    return len(re.split(r"[,;]", answer)) >= 4  # a list of four findings or more


def _contrast(answer: str, truth: str) -> bool:
    return _CONTRAST.search(_core(answer)) is not None


def _negates_truth(answer: str, truth: str) -> bool:
    words = _core(answer).split()
    key = {word for word in _core(truth).split() if word not in _STOP and len(word) > 2}
    for i, word in enumerate(words):
        if word in _NEGATION_BEFORE and key.intersection(words[i + 1 : i + 4]):
            return True
        if word in _NEGATION_AFTER and key.intersection(words[max(0, i - 3) : i]):
            return True
    return False


RULES: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("too_long", _too_long),
    ("delimiter", _delimiter),
    ("verdict", _verdict),
    ("affirmation", _affirmation),
    ("self_assertion", _self_assertion),
    ("instruction", _instruction),
    ("master_key", _master_key),
    ("noncommittal", _noncommittal),
    ("hedge", _hedge),
    ("contrast", _contrast),
    ("negates_truth", _negates_truth),
)


def screen(answer: str, truth: str) -> str | None:
    """The name of the first rule that refuses `answer` against `truth`, or None."""
    for name, rule in RULES:
        if rule(answer, truth) and (name == "too_long" or not rule(truth, truth)):
            return name
    return None
