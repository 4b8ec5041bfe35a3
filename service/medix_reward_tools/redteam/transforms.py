"""Transforms applied to attack material (never to the base answer or the truth): look-alike letters from
other scripts, fullwidth and small-capital forms, invisible and bidi characters, combining marks, case and
spacing games, repetition, truncation. Each takes the text and a random generator and returns new text.

The look-alike table is the attacker's own, written by hand from what renders alike; the defence folds with
Unicode's TR39 table (unicode_fold.py) and never reads this one.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# Latin letter → look-alikes from Cyrillic, Greek, Armenian, Cherokee, Latin extensions, math letters.
LOOKALIKES: dict[str, str] = {
    "a": "аɑα𝖺", "c": "сϲⅽ", "d": "ԁⅾ", "e": "еҽ℮", "g": "ɡ", "h": "һ", "i": "іⅰι", "j": "ј", "k": "κ",
    "l": "ⅼǀӏ", "m": "ⅿ", "n": "ո", "o": "оοօ০", "p": "рρ", "q": "ԛ", "r": "г", "s": "ѕ", "t": "τ", "u": "υս",
    "v": "ѵν", "w": "ԝ", "x": "хⅹ", "y": "уʏ", "A": "АΑᎪ", "B": "ВΒᏴ", "C": "СϹᏟ", "E": "ЕΕᎬ", "H": "НΗᎻ",
    "I": "ІΙӀ", "J": "ЈᎫ", "K": "КΚᏦ", "M": "МΜᎷ", "N": "Ν", "O": "ОΟՕ", "P": "РΡᏢ", "S": "ЅᏚ", "T": "ТΤᎢ",
    "X": "ХΧ", "Y": "ҮΥ", "Z": "ΖᏃ", "R": "Ꭱ", "G": "Ԍ", "D": "Ꭰ", "L": "Ꮮ", "V": "Ꮩ", "W": "Ꮃ",
}  # fmt: skip
SMALL_CAPITALS = dict(zip("abcdefghijklmnopqrstuvwxyz", "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘǫʀꜱᴛᴜᴠᴡxʏᴢ", strict=True))
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
BIDI = "\u200e\u200f\u202a\u202b\u202d\u202e\u2066\u2067\u2068"
COMBINING = "\u0301\u0308\u0336\u0332\u0335\u0338\u0307\u0323"


def confusables(text: str, rng: random.Random) -> str:
    share = rng.choice([0.3, 0.6, 1.0])
    return "".join(rng.choice(LOOKALIKES[c]) if c in LOOKALIKES and rng.random() < share else c for c in text)


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def small_capitals(text: str) -> str:
    return "".join(SMALL_CAPITALS.get(c.lower(), c) if c.isalpha() and c.isascii() else c for c in text)


def invisible(text: str, rng: random.Random) -> str:
    return "".join(c + (rng.choice(INVISIBLE) if rng.random() < 0.5 else "") for c in text)


def bidi(text: str, rng: random.Random) -> str:
    mark = rng.choice(BIDI)
    return rng.choice([mark + text, text + mark, mark + text + "\u202c", "\u2067" + text + "\u2069"])


def combining(text: str, rng: random.Random) -> str:
    mark = rng.choice(COMBINING)
    return "".join(c + mark if c.isalpha() else c for c in text)


def case(text: str, rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return text.upper()
    if style == 1:
        return text.lower()
    if style == 2:
        return text.title()
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


def spacing(text: str, rng: random.Random) -> str:
    gap = rng.choice([" ", ".", "-", "  ", " . ", "\t", "_"])
    return gap.join(text) if len(text) <= 12 else text.replace(" ", rng.choice(["  ", "\n", "\t", " \u00a0"]))


def repetition(text: str, rng: random.Random) -> str:
    return rng.choice([" ", "! ", "\n", ", "]).join([text] * rng.randint(2, 5))


def truncation(text: str, rng: random.Random) -> str:
    return text[: max(2, rng.randint(len(text) // 2, len(text)))] if len(text) > 2 else text


TRANSFORMS: dict[str, Callable[[str, random.Random], str]] = {
    "confusables": confusables,
    "fullwidth": lambda text, rng: fullwidth(text),
    "small_capitals": lambda text, rng: small_capitals(text),
    "invisible": invisible,
    "bidi": bidi,
    "combining": combining,
    "case": case,
    "spacing": spacing,
    "repetition": repetition,
    "truncation": truncation,
}


def apply(text: str, names: tuple[str, ...], seed: int) -> str:
    """The transforms in order, each drawing from a generator seeded by `seed`: the same gene, the same text."""
    rng = random.Random(seed)
    for name in names:
        text = TRANSFORMS[name](text, rng)
    return text
