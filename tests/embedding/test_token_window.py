"""The prefix an embedding model reads (token_window.py): the real MiniLM's input ids, and its vectors, are those of
the whole text, for texts made to tokenise awkwardly at any cut."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medix_reward.embedding.token_window import CHARS_PER_TOKEN_GUESS, model_window


def input_ids(minilm, texts: list[str]) -> list[list[int]]:
    return minilm.model.preprocess(texts)["input_ids"].tolist()


def window(minilm, text: str) -> str:
    return model_window(text, minilm.model.tokenizer, minilm.model.max_seq_length)


def long_texts() -> dict[str, str]:
    rng = random.Random(0)
    hex_words = " ".join(f"finding{rng.randrange(1 << 40):x}" for _ in range(1600))[:32_000]
    return {
        "hex words (the hostile run's answers)": hex_words,
        "prose": ("The left upper lobe shows a spiculated mass with pleural retraction. " * 500)[:32_000],
        "one word, no spaces": "a" * 32_000,
        "words past wordpiece's 100 characters": " ".join("b" * 150 for _ in range(200)),
        "whitespace runs": ("mass" + " " * 300 + "\n\t") * 100,
        "punctuation runs": ("lesion" + "!?.," * 50) * 150,
        "accents and combining marks": ("e\u0301panchement pleural " + "n\u0303" * 30 + " ") * 600,
        "CJK, read a character a word": "肺部肿块伴胸膜牵拉" * 3000,
        "emoji": ("🫁 mass 🩻 " * 3000)[:32_000],
        "a long word across the first cut": "x " * 1000 + "y" * 5000 + " z" * 2000,
    }


@pytest.mark.parametrize("name", list(long_texts()))
def test_the_prefix_gives_the_model_the_same_input_ids(minilm, name):
    text = long_texts()[name]
    cut = window(minilm, text)
    assert input_ids(minilm, [cut]) == input_ids(minilm, [text])


def test_the_hostile_answers_are_cut_to_an_eighth_or_less(minilm):
    # The point of the cut: the hostile run's 32k-character answers are tokenised from 2,048 characters.
    text = long_texts()["hex words (the hostile run's answers)"]
    assert len(window(minilm, text)) == minilm.model.max_seq_length * CHARS_PER_TOKEN_GUESS


def test_vectors_are_the_whole_texts_vectors(minilm):
    texts = list(long_texts().values())
    whole = minilm.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_array_equal(minilm.encode(texts), whole)  # same ids, same batch: the same bits


def test_short_texts_are_not_tokenised_twice(minilm):
    class Counting:
        is_fast = True
        calls = 0

        def __call__(self, *args, **kwargs):
            self.calls += 1
            return minilm.model.tokenizer(*args, **kwargs)

    tokenizer = Counting()
    text = "x" * (minilm.model.max_seq_length * CHARS_PER_TOKEN_GUESS)
    assert model_window(text, tokenizer, minilm.model.max_seq_length) == text
    assert tokenizer.calls == 0


_PIECES = st.sampled_from(["mass", " ", "  ", "\n", "é", "e\u0301", "肺", "🫁", "!", "...", "x" * 120, "##", "[SEP]"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_PIECES, min_size=1, max_size=6000).map("".join))
def test_any_text_of_awkward_pieces(minilm, text):
    assert input_ids(minilm, [window(minilm, text)]) == input_ids(minilm, [text])
