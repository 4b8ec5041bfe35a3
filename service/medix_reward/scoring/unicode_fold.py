"""Look-alike folding for answer screening: what an answer reads as, whatever characters spell it.

`fold(text)` is NFKC (fullwidth, mathematical and circled letters, ligatures), without invisible format
characters (zero-width, bidi controls, soft hyphen) or combining marks, then each character replaced by its
ASCII look-alike where Unicode's confusables table (TR39, as the maintained `confusable-homoglyphs` package
ships it) names one, then casefolded. "YЕS" with a Cyrillic Е, "ʏᴇꜱ" in small capitals and "Ｙｅｓ" all fold to
"yes". Linear: one table look-up per character.

`scripts(text)` names the scripts of a text's letters (the same package's script table), for the policy on
answers in another script than the truth's.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from confusable_homoglyphs import categories, confusables

_NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED", "Unknown"})


def _ascii(text: str) -> bool:
    return text.isascii() and text.isprintable() and not text.isspace()


_LATIN_NAME = re.compile(r"LATIN (?:CAPITAL |SMALL )?LETTER (?:SMALL CAPITAL |INVERTED |TURNED |REVERSED )?([A-Z])\b")


class _Skeletons(dict[int, str | int]):
    """Non-ASCII character → its ASCII look-alike: TR39's confusables table (directly or through a few other
    look-alikes), else the Latin letter a character's Unicode name spells (ʀ, LATIN LETTER SMALL CAPITAL R,
    which TR39 links only to other small forms). Filled on first sight of each character."""

    def __init__(self) -> None:
        super().__init__()
        data: dict[str, list[dict[str, str]]] = confusables.confusables_data
        singles = {char: [e["c"] for e in entries] for char, entries in data.items() if len(char) == 1}
        resolved: dict[str, str] = {}
        for _ in range(4):  # a few hops reach every character the table links to ASCII
            for char, homoglyphs in singles.items():
                if char.isascii() or char in resolved:
                    continue
                for other in homoglyphs:
                    target = other if _ascii(other) else resolved.get(other)
                    if target is not None:
                        resolved[char] = target
                        break
        self.update({ord(char): target for char, target in resolved.items()})

    def __missing__(self, code: int) -> str | int:
        match = _LATIN_NAME.match(unicodedata.name(chr(code), "")) if code > 127 else None
        value: str | int = match.group(1).lower() if match else code
        self[code] = value
        return value


@functools.cache
def _skeletons() -> _Skeletons:
    return _Skeletons()


def _visible(char: str) -> bool:
    category = unicodedata.category(char)
    return category != "Cf" and not category.startswith("M")


def fold(text: str) -> str:
    """The text as it reads: NFKC, no format characters or combining marks, TR39 look-alikes as ASCII,
    casefolded."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(char for char in unicodedata.normalize("NFD", text) if _visible(char))
    return unicodedata.normalize("NFC", text).casefold().translate(_skeletons()).casefold()


def has_invisible(text: str) -> bool:
    """Whether the text carries format characters (zero-width, bidi controls, soft hyphen, word joiner…)."""
    return any(unicodedata.category(char) == "Cf" for char in text)


def scripts(text: str) -> frozenset[str]:
    """The scripts of the text's letters after NFKC (LATIN, CYRILLIC, HAN…); digits and punctuation have none."""
    text = unicodedata.normalize("NFKC", text)
    return frozenset(categories.alias(char) for char in text if char.isalpha()) - _NEUTRAL_SCRIPTS
