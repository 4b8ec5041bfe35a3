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
| `negates_truth`   | the truth's words under a negation: "no X", "not X", "X excluded", "X ruled out", "incorrect X" |
| `obfuscated`      | invisible format characters: zero-width, bidi controls, word joiners (`fold_confusables`) |
| `other_language`  | letters of a script the truth does not use: Cyrillic, Greek, CJK … (`other_language: refuse`) |
| `non_answer`      | a part naming nothing: "Evident from the image", "X. The key finding" (`non_answers`)     |
| `polarity`        | for a Yes/No truth, anything but a bare Yes or No (`closed_polarity`): hedges, mixtures  |
| `wrong_polarity`  | for a Yes/No truth, a bare Yes or No of the other polarity: wrong by rule, not an attack  |
| `list`            | the truth word for word beside another finding: "X, truth", "truth/X", "1. X 2. truth" (`lists`) |

`Screening` (from the hardened settings) switches the newer rules and the folding: with `fold_confusables`
every rule reads the answer folded (unicode_fold.py: NFKC, TR39 look-alikes as ASCII, no invisible
characters or combining marks, letters spelt one by one joined: "Y E S", "ʏᴇꜱ" and "YЕS" read "yes"); with
`multilingual_lexicon` the `affirmation` rule knows verdicts in 40 languages and ✓-like marks (lexicon.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from medix_reward.scoring.screening_rules import (
    LIST_RULE,
    MULTILINGUAL_RULES,
    NON_ANSWER_RULE,
    OBFUSCATED_RULE,
    OPENING_VERDICT_RULE,
    OTHER_LANGUAGE_RULE,
    POLARITY_RULE,
    RULES,
    WRONG_POLARITY_RULE,
    Rule,
)
from medix_reward.scoring.screening_rules import _too_long as too_long
from medix_reward.scoring.unicode_fold import fold


@dataclass(frozen=True)
class Screening:
    """Which of the newer rules run and how answers are read; each is a hardened setting (settings/reward.py)."""

    fold_confusables: bool = True
    multilingual_lexicon: bool = True
    non_answers: bool = True
    closed_polarity: bool = True
    lists: bool = True
    other_language: Literal["refuse", "judge"] = "refuse"

    def rules(self) -> tuple[tuple[str, Rule], ...]:
        """The rules that read the answer (folded when `fold_confusables`), in order."""
        rules = list(RULES)
        if self.multilingual_lexicon:
            rules += MULTILINGUAL_RULES
        if self.lists:
            rules.append(LIST_RULE)
        if self.non_answers:
            rules.append(NON_ANSWER_RULE)
        if self.closed_polarity:
            rules += [WRONG_POLARITY_RULE, POLARITY_RULE]
        return tuple(rules)

    def raw_rules(self) -> tuple[tuple[str, Rule], ...]:
        """The rules that read the characters themselves, not what they fold to."""
        rules: list[tuple[str, Rule]] = []
        if self.fold_confusables:
            rules.append(OBFUSCATED_RULE)
        if self.other_language == "refuse":
            rules.append(OTHER_LANGUAGE_RULE)
        if self.multilingual_lexicon:
            rules.append(OPENING_VERDICT_RULE)
        return tuple(rules)


BASIC_SCREENING = Screening(
    fold_confusables=False, multilingual_lexicon=False, non_answers=False, closed_polarity=False, lists=False,
    other_language="judge",
)  # fmt: skip  # the first eleven rules alone, on the answer as written: the attack search's baseline


def _spelled_out(text: str) -> str:
    """Letters spelt one by one ("Y E S", "y.e.s", "Y-E-S") joined into the word they spell."""
    tokens = re.findall(r"[^\W_]+|[\W_]+", text)

    def letter(token: str) -> bool:
        return len(token) == 1 and token.isalpha()

    def gap(i: int) -> bool:
        token = tokens[i]
        return 0 < i < len(tokens) - 1 and len(token) <= 3 and set(token) <= set(" \t.-_·")

    return "".join(t for i, t in enumerate(tokens) if not (gap(i) and letter(tokens[i - 1]) and letter(tokens[i + 1])))


def screen(answer: str, truth: str, screening: Screening | None = None) -> str | None:
    """The name of the first rule that refuses `answer` against `truth`, or None. No rule fires that would
    also fire on the truth itself."""
    screening = screening or Screening()
    if too_long(answer, truth):
        return "too_long"
    read_answer, read_truth = answer, truth
    if screening.fold_confusables:
        read_answer, read_truth = _spelled_out(fold(answer)), _spelled_out(fold(truth))
    for name, rule in screening.rules()[1:]:
        if rule(read_answer, read_truth) and not rule(read_truth, read_truth):
            return name
    for name, rule in screening.raw_rules():
        if rule(answer, truth) and not rule(truth, truth):
            return name
    return None
