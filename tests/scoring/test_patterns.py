"""Every regular expression the service runs on text from outside (clients' items, judges' replies, headers)
stays linear: long runs of whitespace and punctuation, the shapes that make a backtracking pattern quadratic,
are fed to each as the service uses it, at the service's size limits (issue 24: a 60,000-space option line
held the event loop for 9.8 s).

The bound is a ceiling, not a speed claim: a linear pattern takes a few milliseconds on these inputs, a
quadratic one seconds to minutes. The patterns rewritten for this are also checked to find what the old
ones found, on inputs small enough for the old ones.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medix_reward_tools.common import percentile

import medix_reward
from medix_reward.api import observability, protocols
from medix_reward.evaluation import rules
from medix_reward.judge import prompts
from medix_reward.scoring import checks, screening_rules

MAX_CHARS = 65_536  # the longest text a client may send (limits.max_prompt_chars)
CEILING_S = 0.5

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
}
# Patterns on the service's own configuration and tables, not on outside text: tag names, the operator's template
# files, Unicode character names.
CONFIGURATION = {"settings.reward._TAG_NAME", "evaluation.templates._LITERAL_SCORE", "scoring.unicode_fold._LATIN_NAME"}

PIECES = [" ", "\t", "\n", "\r\n", "\u00a0", "\u2003", ".", ":", ")", "(", "<", ">", "/", "|", "`", "*", "-", "'",
          '"', ",", ";", "#", "[", "]", "A.", "(A) ", "<answer>", "</answer>", "```", "```json", "<|", "|>",
          "<think>", "</think>", "yes ", "the answer is ", "not ", "or ", "x"]  # fmt: skip


def patterns_in_the_service() -> set[str]:
    names = set()
    for module_info in pkgutil.walk_packages(medix_reward.__path__, "medix_reward."):
        try:
            module = importlib.import_module(module_info.name)
        except ModuleNotFoundError:  # an optional extra (ray_serve: ray) that this environment lacks
            continue
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                names.add(f"{module_info.name.removeprefix('medix_reward.')}.{name}")
    return names


def test_every_pattern_of_the_service_is_fed_here():
    # A pattern added later must be listed in USES (or be configuration) to pass. checks.bridge is compiled per
    # call from the configured tags, so it is not a module attribute.
    assert patterns_in_the_service() == (set(USES) - {"scoring.checks.bridge"}) | CONFIGURATION


def runs(pieces: list[tuple[str, int]], tail: str) -> str:
    text = "".join(piece * count for piece, count in pieces) + tail
    return text[:MAX_CHARS]


texts = st.builds(
    runs,
    st.lists(st.tuples(st.sampled_from(PIECES), st.integers(1, MAX_CHARS)), min_size=1, max_size=4),
    st.sampled_from(["", "x", "y\n", "A. Aspirin", "```", "</answer>"]),
)


@pytest.mark.parametrize("name", list(USES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_long_runs_are_linear(name, text):
    started = time.perf_counter()
    USES[name](text)
    assert time.perf_counter() - started < CEILING_S, (name, len(text))


@pytest.mark.parametrize(
    "text",
    [
        "A. x" + " " * 60_000 + "y",
        "```" + " " * MAX_CHARS + "x",
        "<answer>" * (MAX_CHARS // 8) + "y",
        "(A)" + "\u00a0" * MAX_CHARS + "B",
    ],
    ids=["option_line_spaces", "fence_spaces", "answer_openings", "nbsp_run"],
)
@pytest.mark.parametrize("name", list(USES))
def test_the_reported_shapes_are_linear(name, text):
    started = time.perf_counter()
    USES[name](text)
    assert time.perf_counter() - started < CEILING_S, name


# The linear patterns find what their plain, backtracking forms (OLD_*) find.
OLD_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.)]\s*(\S.*?)\s*$")
OLD_FENCE = re.compile(r"\A```(?:json)?\s*(.*?)\s*```\Z", re.DOTALL | re.IGNORECASE)
OLD_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
small = st.lists(st.sampled_from([*PIECES, "B", "Aspirin", "<ANSWER>", "```JSON", "{}"]), max_size=12).map("".join)


@settings(max_examples=500, deadline=None)
@given(line=small)
def test_option_line_finds_what_it_found(line):
    line = line.splitlines()[0] if line.splitlines() else line
    old, new = OLD_OPTION_LINE.match(line), rules._OPTION_LINE.fullmatch(line)
    assert (old is None) == (new is None)
    if old and new:
        assert (old.group(1), old.group(2)) == (new.group(1), new.group(2).rstrip())


@settings(max_examples=500, deadline=None)
@given(text=small)
def test_fence_and_answer_block_find_what_they_found(text):
    old, new = OLD_FENCE.match(text), rules._FENCE.match(text)
    assert (old is None) == (new is None)
    if old and new:
        assert old.group(1) == new.group(1).strip()
    block = OLD_ANSWER_BLOCK.search(text)
    assert rules.answer_block(text) == (block.group(1) if block else None)


def test_health_answers_while_evaluate_parses_hostile_option_lines(service):
    """Three /evaluate items whose option line holds 60,000 spaces: parsed in linear time on the event loop, so
    /health keeps answering meanwhile (before: 9.8 s per item, during which /health waited)."""
    question = "Which drug?\nChoices:\nA. Aspirin" + " " * 60_000 + "x\nB. Heparin"
    items = [{"question": question, "reference": "A", "response": "A", "task": "medqa", "id": str(i)} for i in range(3)]
    done = threading.Event()
    replies: list[httpx.Response] = []

    def evaluate() -> None:
        replies.append(httpx.post(f"{service.url}/evaluate", json={"items": items}, timeout=120))
        done.set()

    latencies = []
    with httpx.Client(base_url=service.url, timeout=60) as client:
        client.get("/health")
        worker = threading.Thread(target=evaluate)
        worker.start()
        while not done.is_set() or len(latencies) < 20:
            started = time.perf_counter()
            assert client.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
        worker.join()
    assert replies[0].status_code == 200, replies[0].text
    assert all(result["method"] == "rule" for result in replies[0].json()["results"])  # the options were read
    # The stall this guards against held the loop 9.8 s per item; 0.5 s leaves room for a loaded CI machine.
    assert percentile(latencies, 99) < 0.5, sorted(latencies)[-5:]
