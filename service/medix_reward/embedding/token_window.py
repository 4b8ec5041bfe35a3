"""The part of a text an embedding model reads: a prefix, cut before tokenising.

A sentence-transformers model reads the first `max_seq_length` tokens of a text and truncates the rest, but its
tokenizer first tokenises the whole text: for a 32k-character answer read as 256 tokens, ~8,000 tokens whose
arrays are built, allocated and dropped. The cut keeps the model's input identical: a prefix is used only when
at least `max_tokens` of its tokens come from words that end before its last two words (only the words at the
cut can tokenise differently from the whole text; two, for pre-tokenizers that look one character ahead), and the
prefix is doubled until that holds or it is the whole text. `tests/test_token_window.py` checks the model's
input ids are equal, whole text against prefix.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN_GUESS = 8  # the first prefix tried: max_tokens × this many characters


def model_window(text: str, tokenizer: Any, max_tokens: int | None) -> str:
    """The shortest prefix of `text` tried whose first `max_tokens` tokens are the whole text's. `tokenizer`: a
    Hugging Face fast tokenizer (one that maps tokens to words); any other, or no limit, reads the whole text."""
    if not max_tokens or not getattr(tokenizer, "is_fast", False):
        return text
    length = max_tokens * CHARS_PER_TOKEN_GUESS
    while length < len(text):
        prefix = text[:length]
        words = [w for w in tokenizer(prefix, add_special_tokens=False).word_ids() if w is not None]
        if words and sum(1 for w in words if w < words[-1] - 1) >= max_tokens:
            return prefix
        length *= 2
    return text
