"""The pure part of the reward: normalisation, extraction, format and modality checks, composition.

Every function here is total on any text and runs in linear time. The MediX-R1 reference uses
backtracking regexes that go quadratic on model output such as long whitespace runs or many unclosed
tags; each function below gives the reference's exact result (property-tested against the reference
regex in tests/scoring/test_checks.py) without that cost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medix_reward.scoring.screening import Screening, screen
from medix_reward_client.schema import Component, Shortcut, Weights

# A whole whitespace run (possessive, starting where no whitespace precedes it) before a delimiter, or a
# whole run right after one. Each run is scanned once: linear, where the reference's \s* is quadratic.
_RUN_TOUCHING_DELIMITER = re.compile(r"(?<!\s)\s++(?=[<>/])|(?<=[<>/])\s++")


@dataclass(frozen=True)
class Tags:
    thinking: str = "thinking"
    answer: str = "answer"

    def open(self, name: str) -> str:
        return f"<{name}>"

    def close(self, name: str) -> str:
        return f"</{name}>"


def normalize(text: str) -> str:
    """Drop every whitespace run that touches '<', '>' or '/'.

    Same result as the reference's re.sub(r"\\s*(<|>|/)\\s*", r"\1", text).
    """
    return _RUN_TOUCHING_DELIMITER.sub("", text)


def clean_answer(text: str) -> str:
    return text.strip().strip(".")


def format_score(normalized: str, tags: Tags) -> float:
    """1.0 iff, from the first thinking tag on, the stripped text full-matches
    `<thinking>.*?</thinking>\\s*<answer>.*?</answer>` (DOTALL), as the reference does."""
    think_open, answer_close = tags.open(tags.thinking), tags.close(tags.answer)
    start = normalized.find(think_open)
    if start == -1:
        return 0.0
    tail = normalized[start:].strip()
    if not tail.endswith(answer_close):
        return 0.0
    # Lazy groups under a full match accept any `</thinking>\s*<answer>` that ends before the final
    # `</answer>`; the earliest such bridge ends first, so one linear search decides.
    bridge = re.compile(re.escape(tags.close(tags.thinking)) + r"\s*" + re.escape(tags.open(tags.answer)))
    found = bridge.search(tail, len(think_open))
    return 1.0 if found is not None and found.end() <= len(tail) - len(answer_close) else 0.0


def extract_answer(normalized: str, tags: Tags) -> str:
    """The first `<answer>(.*?)</answer>` (DOTALL), else the whole text; stripped, then dots stripped."""
    answer_open = tags.open(tags.answer)
    start = normalized.find(answer_open)
    if start != -1:
        # If the first opening tag has no closing tag after it, no later one has either.
        end = normalized.find(tags.close(tags.answer), start + len(answer_open))
        if end != -1:
            return clean_answer(normalized[start + len(answer_open) : end])
    return clean_answer(normalized)


def strict_answer(normalized: str, tags: Tags) -> tuple[float, str | None]:
    """The hardened format: exactly one thinking block, then exactly one answer block, nothing after.

    (1.0, answer) when the response has that shape; (0.0, None) when it has answer tags in any other shape
    (an answer hidden in the thinking, two answer blocks, text after the answer: format abuse); and
    (0.0, the whole text) when it has no answer tags at all, as the reference reads an untagged response.
    """
    think_open, think_close = tags.open(tags.thinking), tags.close(tags.thinking)
    answer_open, answer_close = tags.open(tags.answer), tags.close(tags.answer)
    counts = [normalized.count(tag) for tag in (think_open, think_close, answer_open, answer_close)]
    if counts[2] == counts[3] == 0:
        return 0.0, clean_answer(normalized)
    if counts != [1, 1, 1, 1]:
        return 0.0, None
    a, b = normalized.index(think_open), normalized.index(think_close)
    c, d = normalized.index(answer_open), normalized.index(answer_close)
    between, after = normalized[b + len(think_close) : c], normalized[d + len(answer_close) :]
    if not (a < b < c < d) or between.strip() or after.strip():
        return 0.0, None
    return 1.0, clean_answer(normalized[c + len(answer_open) : d])


def predicted_modality(normalized: str, tags: Tags) -> str | None:
    """The text before the first thinking tag, stripped; None when there is no thinking tag."""
    start = normalized.find(tags.open(tags.thinking))
    return None if start == -1 else normalized[:start].strip()


def modality_score(predicted: str | None, true_tag: str) -> float:
    return 1.0 if predicted is not None and predicted.lower() == true_tag.lower() else 0.0


def split_ground_truth(ground_truth: str) -> tuple[str | None, str]:
    """'<TAG> answer' → ('<TAG>', 'answer'); without '>' there is no tag and the whole text is the answer."""
    head, sep, rest = ground_truth.partition(">")
    if not sep:
        return None, clean_answer(ground_truth)
    return (head + ">").strip(), clean_answer(rest)


def modality_tag(modality: str) -> str:
    """'X_RAY' or '<X_RAY>' → '<X_RAY>'."""
    name = modality.strip().removeprefix("<").removesuffix(">").strip()
    return f"<{name}>"


def is_invalid_answer(answer: str) -> bool:
    return len(answer) <= 1 or "__" in answer or ":" in answer or "?" in answer


def accuracy_shortcut(predicted: str, truth: str) -> Shortcut | None:
    """Reference steps 5 and 6: invalid answers score 0, exact matches 1, neither needs a model."""
    if is_invalid_answer(predicted):
        return "invalid_answer"
    if predicted == truth:
        return "exact_match"
    return None


@dataclass(frozen=True)
class CheckedItem:
    """Everything about one completion that needs no model."""

    format: float
    predicted_modality: str | None
    predicted_answer: str
    true_answer: str
    true_modality: str | None
    shortcut: Shortcut | None
    rejection: str | None = None  # why a "rejected" shortcut was taken

    @property
    def modality(self) -> float | None:
        if self.true_modality is None:
            return None
        return modality_score(self.predicted_modality, self.true_modality)


def check_item(
    response: str,
    true_answer: str,
    true_modality: str | None,
    tags: Tags,
    *,
    strict_format: bool = False,
    screen_answers: bool = False,
    screening: Screening | None = None,
) -> CheckedItem:
    """The reference's checks; the keywords are the hardened preset's format and screening defences."""
    normalized = normalize(response)
    rejection = None
    if strict_format:
        format_, answer = strict_answer(normalized, tags)
        predicted, rejection = (
            (answer, None) if answer is not None else (extract_answer(normalized, tags), "format_abuse")
        )
    else:
        format_, predicted = format_score(normalized, tags), extract_answer(normalized, tags)
    shortcut = accuracy_shortcut(predicted, true_answer)
    if rejection is None and screen_answers and shortcut is None:
        rejection = screen(predicted, true_answer, screening)
    return CheckedItem(
        format=format_,
        predicted_modality=predicted_modality(normalized, tags),
        predicted_answer=predicted,
        true_answer=true_answer,
        true_modality=true_modality,
        shortcut="rejected" if rejection is not None else shortcut,
        rejection=rejection,
    )


def compose(scores: dict[Component, float | None], weights: Weights, enabled: frozenset[Component]) -> float | None:
    """overall = content·(llm·J + embed·E + modality·M) + format·F, in the reference's order of operations.

    A disabled component weighs nothing; an enabled one that could not be scored makes overall None.
    """
    if any(scores[name] is None for name in enabled):
        return None

    def value(name: Component) -> float:
        score = scores[name]
        return score if name in enabled and score is not None else 0.0

    content = (
        weights.accuracy_llm * value("accuracy_llm")
        + weights.accuracy_embed * value("accuracy_embed")
        + weights.modality * value("modality")
    )
    return weights.content * content + weights.format * value("format")
