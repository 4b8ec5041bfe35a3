"""Reference semantics of the MediX-R1 reward (steps 1-6, 9, 10 of the `/reward` issue).

The reference's own regexes are written out below, literally; the service's linear-time checks must
agree with them on every input (hypothesis), and on the table of named cases.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medix_reward.scoring.checks import (
    Tags,
    accuracy_shortcut,
    check_item,
    compose,
    extract_answer,
    format_score,
    modality_tag,
    normalize,
    split_ground_truth,
)
from medix_reward_client.schema import COMPONENTS, Weights

TAGS = Tags()


# -- the reference, literally ------------------------------------------------------------------------
def ref_normalize(text: str) -> str:
    return re.sub(r"\s*(<|>|/)\s*", r"\1", text)


def ref_format(normalized: str) -> float:
    start = normalized.find("<thinking>")
    if start == -1:
        return 0.0
    pattern = r"<thinking>.*?</thinking>\s*<answer>.*?</answer>"
    return 1.0 if re.fullmatch(pattern, normalized[start:].strip(), re.DOTALL) else 0.0


def ref_extract(normalized: str) -> str:
    found = re.search(r"<answer>(.*?)</answer>", normalized, re.DOTALL)
    return (found.group(1) if found else normalized).strip().strip(".")


# -- the table -----------------------------------------------------------------------------------------
GOOD = "<X_RAY> <thinking>Air in the pleural space.</thinking> <answer>Pneumothorax</answer>"
CASES = [
    # (name, response, ground_truth, format, modality, predicted answer, shortcut)
    ("well formed, exact", GOOD, "<X_RAY> Pneumothorax", 1.0, 1.0, "Pneumothorax", "exact_match"),
    ("whitespace inside tags", "< X_RAY > < thinking >r< / thinking >\n< answer > Pneumothorax. < /answer >",
     "<X_RAY> Pneumothorax", 1.0, 1.0, "Pneumothorax", "exact_match"),
    ("no thinking tag", "<X_RAY> <answer>Pneumothorax</answer>", "<X_RAY> Pneumothorax",
     0.0, 0.0, "Pneumothorax", "exact_match"),
    ("no answer tag: whole text is the answer", "<X_RAY> <thinking>r</thinking> Pneumothorax",
     "<X_RAY> Pneumothorax", 0.0, 1.0, "<X_RAY><thinking>r</thinking>Pneumothorax", None),
    ("unclosed answer tag", "<X_RAY> <thinking>r</thinking> <answer>Pneumothorax",
     "<X_RAY> Pneumothorax", 0.0, 1.0, "<X_RAY><thinking>r</thinking><answer>Pneumothorax", None),
    ("text after </answer>", GOOD + " I am sure.", "<X_RAY> Pneumothorax", 0.0, 1.0, "Pneumothorax", "exact_match"),
    ("two answer blocks in a row pass the lazy full match",
     "<X_RAY><thinking>r</thinking><answer>Effusion</answer><answer>Pneumothorax</answer>",
     "<X_RAY> Pneumothorax", 1.0, 1.0, "Effusion", None),
    ("two thinking blocks pass too", "<X_RAY><thinking>a</thinking><thinking>b</thinking><answer>Mass</answer>",
     "<X_RAY> Mass", 1.0, 1.0, "Mass", "exact_match"),
    ("thinking only after the answer", "<answer>Mass</answer><thinking>b</thinking>", "<X_RAY> Mass",
     0.0, 0.0, "Mass", "exact_match"),
    ("colon makes it invalid", "<X_RAY><thinking>r</thinking><answer>Dx: pneumothorax</answer>",
     "<X_RAY> Pneumothorax", 1.0, 1.0, "Dx: pneumothorax", "invalid_answer"),
    ("question mark makes it invalid", "<X_RAY><thinking>r</thinking><answer>Pneumothorax?</answer>",
     "<X_RAY> Pneumothorax", 1.0, 1.0, "Pneumothorax?", "invalid_answer"),
    ("double underscore makes it invalid", "<X_RAY><thinking>r</thinking><answer>__</answer>",
     "<X_RAY> Pneumothorax", 1.0, 1.0, "__", "invalid_answer"),
    ("one character is invalid", "<X_RAY><thinking>r</thinking><answer>B</answer>", "<X_RAY> B",
     1.0, 1.0, "B", "invalid_answer"),
    ("empty answer is invalid", "<X_RAY><thinking>r</thinking><answer> </answer>", "<X_RAY> Mass",
     1.0, 1.0, "", "invalid_answer"),
    ("only dots is invalid", "<X_RAY><thinking>r</thinking><answer>...</answer>", "<X_RAY> Mass",
     1.0, 1.0, "", "invalid_answer"),
    ("trailing periods on both sides", "<X_RAY><thinking>r</thinking><answer>Pneumothorax...</answer>",
     "<X_RAY> Pneumothorax.", 1.0, 1.0, "Pneumothorax", "exact_match"),
    ("exact match is case-sensitive", "<X_RAY><thinking>r</thinking><answer>pneumothorax</answer>",
     "<X_RAY> Pneumothorax", 1.0, 1.0, "pneumothorax", None),
    ("modality tag case-insensitive", "<x_ray><thinking>r</thinking><answer>Mass</answer>", "<X_RAY> Mass",
     1.0, 1.0, "Mass", "exact_match"),
    ("modality tag spelled differently", "<X-RAY><thinking>r</thinking><answer>Mass</answer>", "<X_RAY> Mass",
     1.0, 0.0, "Mass", "exact_match"),
    ("modality without brackets", "X_RAY <thinking>r</thinking><answer>Mass</answer>", "<X_RAY> Mass",
     1.0, 0.0, "Mass", "exact_match"),
    ("words before the tag", "Modality: <X_RAY> <thinking>r</thinking><answer>Mass</answer>", "<X_RAY> Mass",
     1.0, 0.0, "Mass", "exact_match"),
    ("slash spacing inside the answer", "<CT_SCAN><thinking>r</thinking><answer>Bleed and / or mass</answer>",
     "<CT_SCAN> Bleed and/or mass", 1.0, 1.0, "Bleed and/or mass", "exact_match"),
    ("unicode and non-breaking spaces", "<ULTRASOUND>\u00a0<thinking>é</thinking>\u2003<answer>Cholélithiase</answer>",
     "<ULTRASOUND> Cholélithiase", 1.0, 1.0, "Cholélithiase", "exact_match"),
    ("untagged ground truth has no modality", GOOD, "Pneumothorax", 1.0, None, "Pneumothorax", "exact_match"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("response", "ground_truth", "fmt", "modality", "answer", "shortcut"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_reference_cases(response, ground_truth, fmt, modality, answer, shortcut):
    true_modality, true_answer = split_ground_truth(ground_truth)
    checked = check_item(response, true_answer, true_modality, TAGS)
    assert (checked.format, checked.modality, checked.predicted_answer, checked.shortcut) == (
        fmt,
        modality,
        answer,
        shortcut,
    )
    normalized = ref_normalize(response)
    assert checked.format == ref_format(normalized)
    assert checked.predicted_answer == ref_extract(normalized)


def test_ground_truth_split():
    assert split_ground_truth("<X_RAY> Pneumothorax.") == ("<X_RAY>", "Pneumothorax")
    assert split_ground_truth("<CT_SCAN>a > b") == ("<CT_SCAN>", "a > b")
    assert split_ground_truth("Pneumothorax") == (None, "Pneumothorax")
    assert modality_tag("x_ray") == "<x_ray>" == modality_tag("<x_ray>")


def test_think_tags_are_configurable():
    tags = Tags(thinking="think")
    checked = check_item("<MRI_SCAN> <think>r</think> <answer>Glioma</answer>", "Glioma", "<MRI_SCAN>", tags)
    assert (checked.format, checked.modality, checked.shortcut) == (1.0, 1.0, "exact_match")
    assert check_item(GOOD, "Pneumothorax", "<X_RAY>", tags).format == 0.0


def test_shortcut_order_invalid_before_exact():
    assert accuracy_shortcut("A", "A") == "invalid_answer"  # step 5 comes before step 6


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ({"format": 1.0, "modality": 1.0, "accuracy_llm": 1.0, "accuracy_embed": 1.0}, 1.0),
        ({"format": 1.0, "modality": 0.0, "accuracy_llm": 0.0, "accuracy_embed": 0.0}, 0.1),
        ({"format": 0.0, "modality": 0.0, "accuracy_llm": 1.0, "accuracy_embed": 0.0}, 0.9 * 0.575),
        ({"format": 0.0, "modality": 0.0, "accuracy_llm": 0.0, "accuracy_embed": 1.0}, 0.9 * 0.375),
        ({"format": 0.0, "modality": 1.0, "accuracy_llm": 0.0, "accuracy_embed": 0.0}, 0.9 * 0.05),
    ],
)
def test_reference_weights(scores, expected):
    assert compose(scores, Weights(), frozenset(COMPONENTS)) == pytest.approx(expected, abs=1e-12)


def test_compose_null_and_disabled():
    scores = {"format": 1.0, "modality": None, "accuracy_llm": 1.0, "accuracy_embed": 0.0}
    assert compose(scores, Weights(), frozenset(COMPONENTS)) is None
    enabled = frozenset({"format", "accuracy_llm", "accuracy_embed"})
    assert compose(scores, Weights(), enabled) == pytest.approx(0.9 * 0.575 + 0.1)


# -- properties: the linear checks equal the reference regexes on any text ----------------------------
FRAGMENTS = ["<thinking>", "</thinking>", "<answer>", "</answer>", "<", ">", "/", " ", "\n", "\t", "\u00a0",
             "\u2003", "a", "B", ".", ":", "?", "_", "é", "<X_RAY>", "thinking", "answer"]  # fmt: skip
tag_soup = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
any_text = st.one_of(tag_soup, st.text(max_size=200))


@settings(max_examples=1500, deadline=None)
@given(any_text)
def test_normalize_equals_reference(text):
    assert normalize(text) == ref_normalize(text)


@settings(max_examples=1500, deadline=None)
@given(any_text)
def test_format_and_extraction_equal_reference(text):
    normalized = ref_normalize(text)
    assert format_score(normalized, TAGS) == ref_format(normalized)
    assert extract_answer(normalized, TAGS) == ref_extract(normalized)


@settings(max_examples=500, deadline=None)
@given(any_text, any_text)
def test_checks_are_total_and_in_range(response, ground_truth):
    true_modality, true_answer = split_ground_truth(ground_truth)
    checked = check_item(response, true_answer, true_modality, TAGS)
    assert checked.format in (0.0, 1.0)
    assert checked.modality in (0.0, 1.0, None)


def test_pathological_output_stays_linear():
    """Whitespace runs and unclosed tags make the reference regexes quadratic; ours are not.
    (No timing: with the reference's behaviour this input would take minutes, so it cannot pass.)"""
    text = " " * 200_000 + "x" + "<answer>" * 20_000 + "</thinking>" * 20_000
    checked = check_item(text, "x", "<X_RAY>", TAGS)
    assert checked.format == 0.0
