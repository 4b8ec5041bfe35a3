"""How long each pattern the service runs on outside text takes on the longest input a client may send, and how
that grows: the speed side of tests/scoring/test_patterns.py, whose assertions are on growth only.

    python -m medix_reward_tools.pattern_bench

For each pattern (as the service calls it) and each reported hostile shape: the best of three runs on the whole
shape and on the same shape 8 times shorter, and their ratio (linear: ~8 or less; quadratic: ~64).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from medix_reward.api import observability, protocols
from medix_reward.evaluation import rules
from medix_reward.judge import prompts
from medix_reward.scoring import checks, initialisms, screening_rules

MAX_CHARS = 65_536  # the longest text a client may send (limits.max_prompt_chars)

# Each pattern, as the service calls it.
USES: dict[str, Callable[[str], object]] = {
    "evaluation.rules._THINKING_END": rules.strip_reasoning,
    "evaluation.rules._FENCE": lambda text: rules._FENCE.match(text),
    "evaluation.rules._ANSWER_OPEN": rules.answer_block,
    "evaluation.rules._ANSWER_CLOSE": rules.answer_block,
    "evaluation.rules._OPTION_LINE": lambda text: rules._OPTION_LINE.fullmatch(text),
    "evaluation.rules._LETTER": lambda text: rules.chosen_option(text, {"A": "Aspirin", "B": "Heparin"}),
    "evaluation.rules._LETTER_AND_TEXT": lambda text: rules.chosen_option(text, {"A": "Aspirin", "B": "Heparin"}),
    "judge.prompts._CONTROL_BRACKETS": prompts.neutralise,
    "judge.prompts._LABEL": prompts.strict_label,
    "api.protocols._END_MARKER": protocols.without_end_markers,
    "scoring.checks._RUN_TOUCHING_DELIMITER": checks.normalize,
    "scoring.checks.bridge": lambda text: checks.format_score(f"<thinking>{text}</answer>", checks.Tags()),
    "scoring.screening_rules._WORD": lambda text: screening_rules._words(text),
    "scoring.screening_rules._SELF_ASSERTION": lambda text: screening_rules._self_assertion(text, "Mass"),
    "scoring.screening_rules._INSTRUCTION": lambda text: screening_rules._instruction(text, "Mass"),
    "scoring.screening_rules._DELIMITER": lambda text: screening_rules._delimiter(text, "Mass"),
    "scoring.screening_rules._NONCOMMITTAL": lambda text: screening_rules._noncommittal(text, "Mass"),
    "scoring.screening_rules._HEDGE": lambda text: screening_rules._hedge(text, "Mass"),
    "scoring.screening_rules._CONTRAST": lambda text: screening_rules._contrast(text, "Mass"),
    "scoring.screening_rules._OPENING_VERDICT": lambda text: screening_rules._verdict_opening(text, "Mass"),
    "scoring.screening_rules._SEGMENT": lambda text: (
        screening_rules._verdict_standing(text),
        screening_rules._non_answer(text, "Mass"),
    ),
    "scoring.screening_rules._POINTS_BACK": lambda text: screening_rules._self_assertion_wide(text, "Mass"),
    "scoring.screening_rules._ORDER": lambda text: screening_rules._instruction_wide(text, "Mass"),
    "scoring.screening_rules._ROLE": lambda text: screening_rules._instruction_wide(text, "Mass"),
    "scoring.screening_rules._LIST_MARK": lambda text: screening_rules._buried_truth(text, "Mass effect"),
    "scoring.screening_rules._WORD_OR_MARK": lambda text: screening_rules._buried_truth(text, "Mass effect"),
    "api.observability._VALID_REQUEST_ID": lambda text: observability._VALID_REQUEST_ID.fullmatch(text),
    "scoring.initialisms._INITIALISM": lambda text: initialisms.is_initialism(text, "Pulmonary embolism"),
    "scoring.initialisms._LETTERS": lambda text: initialisms.is_initialism("PE", text),
}

# The shapes of issue 24's findings, each `part` times shorter.
REPORTED: dict[str, Callable[[int], str]] = {
    "option_line_spaces": lambda part: "A. x" + " " * (60_000 // part) + "y",
    "fence_spaces": lambda part: "```" + " " * (MAX_CHARS // part) + "x",
    "answer_openings": lambda part: "<answer>" * (MAX_CHARS // 8 // part) + "y",
    "nbsp_run": lambda part: "(A)" + "\u00a0" * (MAX_CHARS // part) + "B",
}


def best_of_three(use: Callable[[str], object], text: str) -> float:
    """The least CPU time of this thread over three runs: on a loaded machine, wall time counts the waits for a
    core too, and more of them the longer the run, which would inflate the ratio of a long run to a short one."""
    times = []
    for _ in range(3):
        started = time.thread_time()
        use(text)
        times.append(time.thread_time() - started)
    return min(times)


def rows() -> list[tuple[str, str, float, float]]:
    """(pattern, shape, seconds on the whole shape, seconds on an eighth)."""
    return [(name, shape, best_of_three(use, make(1)), best_of_three(use, make(8)))
            for name, use in USES.items() for shape, make in REPORTED.items()]  # fmt: skip


def main() -> None:
    print(f"{'pattern':34}{'shape':22}{'whole ms':>10}{'eighth ms':>11}{'ratio':>7}")
    for name, shape, whole, eighth in rows():
        print(f"{name:34}{shape:22}{whole * 1000:>10.2f}{eighth * 1000:>11.3f}{whole / max(eighth, 1e-9):>7.1f}")


if __name__ == "__main__":
    main()
