"""Whether an answer is the truth's initialism ("PE" for "Pulmonary embolism"): a small embedder such as
all-MiniLM-L6-v2 does not know medical initialisms and scores them near content-free text, so the hardened
preset's semantic floor spares them (the judge must still say YES, both ways under the swap check).

An initialism names the truth itself, so sparing it credits no answer that does not: the attack search's
oracle (`medix-reward redteam`) counts no hole there."""

from __future__ import annotations

import re

_INITIALISM = re.compile(r"[A-Z]{2,6}")
_LETTERS = re.compile(r"[A-Za-z]+")
_FUNCTION_WORDS = frozenset(["of", "the", "a", "an", "in", "on", "at", "to", "with", "and", "for"])


def is_initialism(answer: str, truth: str) -> bool:
    """The answer, one word of 2 to 6 capitals (a final full stop allowed), is the initials of the truth's
    words, with or without its function words; hyphenated parts count as words ("Left-sided" is L, S)."""
    word = answer.strip().removesuffix(".")
    if _INITIALISM.fullmatch(word) is None:
        return False
    words = _LETTERS.findall(truth[:200])
    content = [w for w in words if w.casefold() not in _FUNCTION_WORDS]
    return len(words) >= 2 and word in {"".join(w[0] for w in ws).upper() for ws in (words, content) if len(ws) >= 2}
