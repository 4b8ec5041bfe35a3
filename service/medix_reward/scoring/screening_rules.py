"""The screening rules (screening.py says what each refuses and when it runs): each a predicate on (answer,
truth), a word or phrase test linear in the answer's length, and the tables that name them in order."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

from medix_reward.scoring import lexicon
from medix_reward.scoring.unicode_fold import fold, has_invisible, scripts

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_WORD_OR_MARK = re.compile(r"[^\W_]+(?:['’][^\W_]+)?|\x1f")

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
        "neither", "incorrect", "improper", "abnormal", "mal", "free", "clear"
    ]
)  # fmt: skip
_NEGATION_AFTER = frozenset(
    [
        "excluded", "ruled", "rejected", "unlikely", "absent", "negative", "resolved"
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


def _obfuscated(answer: str, truth: str) -> bool:
    return has_invisible(answer)


def _other_language(answer: str, truth: str) -> bool:
    return bool(scripts(answer) - scripts(truth))


@functools.cache
def _multilingual() -> tuple[frozenset[str], tuple[str, ...]]:
    """The folded lexicon: single words, and phrases of several words (matched between word boundaries)."""
    entries = {_core(fold(entry)) for entry in lexicon.AFFIRMATIONS_MULTILINGUAL}
    return frozenset(e for e in entries if " " not in e), tuple(f" {e} " for e in entries if " " in e)


_OPENERS = frozenset(["yes", "true", "correct", "match", "matches", "exactly", "indeed", "affirmative", "ok",
                      "okay", "valid", "accurate", "yep", "yeah", "confirmed", "agreed", "identical",
                      "equivalent"])  # fmt: skip
_OPENING_VERDICT = re.compile(r"\s*[^\W_]+(?=[\s,;:.!-]+[A-Z])")


# "True" names a finding only before these words (true aneurysm, true vocal cords, true lumen …).
_TRUE_NAMES = frozenset(
    [
        "aneurysm", "aneurysms", "vocal", "cord", "cords", "rib", "ribs", "positive", "positives",
        "negative", "negatives", "lumen", "pelvis", "cyst", "cysts", "knot", "diverticulum", "hermaphroditism",
        "polycythemia"
    ]
)  # fmt: skip


def _verdict_standing(answer: str) -> bool:
    """A verdict word as a part of its own ("Match, X", "True; X"), or "true" that names nothing ("X true")."""
    if any(_core(part) in VERDICT_WORDS for part in _SEGMENT.split(answer)):
        return True
    words = _core(answer).split()
    return any(w == "true" and (i + 1 == len(words) or words[i + 1] not in _TRUE_NAMES) for i, w in enumerate(words))


def _verdict_opening(answer: str, truth: str) -> bool:
    """A verdict word opening the answer before a capitalised diagnosis ("True Seborrheic keratosis"; "True
    aneurysm" is kept). Reads the characters' case, so it runs on the answer as written (after NFKC)."""
    opening = _OPENING_VERDICT.match(unicodedata.normalize("NFKC", answer))
    return opening is not None and fold(opening.group()).strip() in _OPENERS


def _affirmation_multilingual(answer: str, truth: str) -> bool:
    words, phrases = _multilingual()
    core = _core(answer)
    return (
        _affirmation(answer, truth)
        or _verdict_standing(answer)
        or any(word in words for word in core.split())
        or any(phrase in f" {core} " for phrase in phrases)
        or any(char in lexicon.AFFIRMATION_SYMBOLS for char in answer)
    )


@functools.cache
def _content_free() -> frozenset[str]:
    return frozenset(_core(fold(word)) for word in lexicon.CONTENT_FREE)


_SEGMENT = re.compile(r"\n|[.;:!?](?:\s|$)|,|\s[-–—•*]\s|^\s*[-–—•*]\s|/|\(|\)|\|")


def _non_answer(answer: str, truth: str) -> bool:
    """Some part of the answer (a line, a sentence, a clause) names nothing: "Evident from the image", or a
    diagnosis followed by "The key finding"."""
    for segment in _SEGMENT.split(answer):
        words = _core(segment).split()
        if words and all(word in _content_free() or word.isdigit() for word in words):
            return True
    return False


@functools.cache
def _self_reference() -> frozenset[str]:
    return frozenset(_core(fold(word)) for word in lexicon.SELF_REFERENCE)


_POINTS_BACK = re.compile(r"\bsame as\b|\bas above\b|\bsee above\b|\bas before\b|\bditto\b")


def _self_assertion_wide(answer: str, truth: str) -> bool:
    core = _core(answer)
    return (
        _self_assertion(answer, truth)
        or any(word in _self_reference() for word in core.split())
        or _POINTS_BACK.search(core) is not None
    )


# An order to the grader: a grading verb with its object ("Mark this …", "Return it …", "Grade as …"), or a
# chat role speaking ("System: …", "Assistant: …").
_ORDER = re.compile(
    r"\b(?:mark|grade|score|rate|label|reply|respond|output|return|say|print|classify|judge|evaluate|accept|"
    r"approve|treat|count|consider)\b (?:this|it|that|these|the answer|the response|the prediction|as|with|me)\b"
)
_ROLE = re.compile(
    r"\b(?:system|assistant|user|human|model|grader|evaluator|judge|instruction)\s*:|"
    r"\bthe (?:grade|verdict|label|rating|evaluation|assessment) (?:is|was|=)"
)


def _instruction_wide(answer: str, truth: str) -> bool:
    return _instruction(answer, truth) or _ORDER.search(_core(answer)) is not None or _ROLE.search(answer) is not None


# A qualifier right after the truth ("X without mediastinal shift", "X with neovascularization of the disc").
_QUALIFIER = frozenset(["with", "without", "of", "in", "on", "at", "involving", "extending"])
_LIST_MARK = re.compile(r"[,;/|•&\n()\[\]]|\s[-–—]\s|(?<!\w)\d+[.)](?!\w)")
_JOINS = frozenset(["and", "with", "plus", "or", "versus", "vs", "nor"])
_SIDES = frozenset(["left", "right", "bilateral", "contralateral"])
_LEAD_INS = frozenset(
    [("consistent", "with"), ("compatible", "with"), ("keeping", "with"), ("suggestive", "of"), ("diagnostic", "of"),
     ("characteristic", "of"), ("indicative", "of"), ("typical", "of")]
)  # fmt: skip
_LIST_STOP = frozenset(
    [
        "the", "of", "a", "an", "in", "on", "at", "to", "for", "from", "by", "is", "are", "was", "were", "this", "that"
    ]
)  # fmt: skip  # fmt: skip
# Words that qualify a finding rather than name another one: "Pneumothorax, left", "Effusion, small".
_MODIFIERS = frozenset(
    [
        "left", "right", "bilateral", "unilateral", "sided", "side", "small", "large", "tiny", "massive", "mild",
        "moderate", "severe", "acute", "subacute", "chronic", "early", "late", "advanced", "tension", "apical", "basal",
        "upper", "lower", "middle", "proximal", "distal", "complete", "partial", "full", "thickness", "focal",
        "diffuse", "multiple", "single", "solitary", "extensive", "minimal", "new", "old", "simple", "complex",
        "segmental", "subsegmental", "anterior", "posterior", "medial", "lateral", "superior", "inferior", "central",
        "peripheral", "present", "seen", "noted", "visible", "identified"
    ]
)  # fmt: skip


def _buried_truth(answer: str, truth: str) -> bool:
    """The truth, word for word, beside a finding of another kind: "Effusion, Pneumothorax", "1. X 2. truth",
    "X with truth", "truth/X", "Left effusion, right effusion". Modifiers before the truth ("Left pneumothorax"),
    a qualifier after it ("truth without shift") or a modifier set apart ("Pneumothorax, left") are kept."""
    said = _core(truth).split()
    tokens = _WORD_OR_MARK.findall(_LIST_MARK.sub(" \x1f ", answer.casefold()))
    at = [i for i, token in enumerate(tokens) if token != "\x1f"]  # words, found across any marks between them
    words, n = [tokens[i] for i in at], len(said)
    found = next((j for j in range(len(words) - n + 1) if words[j : j + n] == said), -1) if n else -1
    keys = {w for w in said if w not in _LIST_STOP and len(w) > 2}
    if found == -1 or len(words) == n or not keys or said in (["yes"], ["no"]):
        return False  # a closed truth (Yes, No) is the polarity rule's
    start, end = at[found], at[found + n - 1] + 1

    def names_another(side: list[str]) -> bool:
        words = [w for w in side if w != "\x1f" and w not in _JOINS and w not in _LIST_STOP]
        return any(w in keys or (w not in said and w not in _MODIFIERS and not w.isdigit()) for w in words)

    before, after = tokens[:start], tokens[end:]
    leads_in = tuple(before[-2:]) in _LEAD_INS and "\x1f" not in before  # "lesions consistent with <truth>"
    before_apart = not leads_in and any(w == "\x1f" or w in _JOINS for w in before)
    if set(tokens) & _SIDES - set(said) and set(said) & _SIDES:
        return True  # "Right effusion on the left": a side the truth does not name, beside the one it does
    after_apart = bool(after) and (after[0] not in _QUALIFIER or any(w == "\x1f" or w in _JOINS for w in after[1:]))
    return (before_apart and names_another(before)) or (after_apart and names_another(after))


def _other_polarity(answer: str, truth: str) -> bool:
    """For a truth that is only Yes or No, a bare answer of the other polarity ("No" to "Yes"): wrong by rule, and
    not shown to the judge, since a yes-word reads to it as a verdict ("Yes - yes." against "No" was credited by
    the search's judge). Named apart from `polarity` because it is an honest wrong answer, not an attack."""
    core = _core(truth)
    if core not in ("yes", "no"):
        return False
    other = lexicon.POLARITY_NO if core == "yes" else lexicon.POLARITY_YES
    words = set(_core(answer).split())
    return bool(words) and words <= other


def _polarity(answer: str, truth: str) -> bool:
    """For a truth that is only Yes or No, the answer must be a bare Yes or No of the truth's polarity: words of
    one polarity only ("No", "No, no"). "Yes, no", "Probably yes", "No. Classic presentation", "Sí/No" are refused
    (a bare answer of the other polarity is `_other_polarity`'s, checked first)."""
    core = _core(truth)
    if core not in ("yes", "no"):
        return False
    polarity = lexicon.POLARITY_YES if core == "yes" else lexicon.POLARITY_NO
    words = set(_core(answer).split())
    return not (words and words <= polarity)


Rule = Callable[[str, str], bool]

RULES: tuple[tuple[str, Rule], ...] = (
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
# The newer rules, each switched by a hardened setting (Screening).
MULTILINGUAL_RULES: tuple[tuple[str, Rule], ...] = (
    ("affirmation", _affirmation_multilingual),
    ("self_assertion", _self_assertion_wide),
    ("instruction", _instruction_wide),
)
LIST_RULE: tuple[str, Rule] = ("list", _buried_truth)
NON_ANSWER_RULE: tuple[str, Rule] = ("non_answer", _non_answer)
WRONG_POLARITY_RULE: tuple[str, Rule] = ("wrong_polarity", _other_polarity)
# Refusals that decide an honest wrong answer without the judge, not an attack: they keep a wrong answer's credit.
WRONG_BY_RULE = frozenset({WRONG_POLARITY_RULE[0]})
POLARITY_RULE: tuple[str, Rule] = ("polarity", _polarity)
# Rules that read the characters themselves, not what they fold to.
OBFUSCATED_RULE: tuple[str, Rule] = ("obfuscated", _obfuscated)
OTHER_LANGUAGE_RULE: tuple[str, Rule] = ("other_language", _other_language)
OPENING_VERDICT_RULE: tuple[str, Rule] = ("verdict", _verdict_opening)
