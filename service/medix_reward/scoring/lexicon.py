"""Word lists of the hardened screening's newer rules (screening.py): verdicts and affirmations in many
languages and scripts, content-free words (non-answers), and the polarity of closed (Yes/No) answers.

Entries are written as people write them; screening folds them (unicode_fold.fold) the way it folds answers,
so "Sí", "ДА" and "はい" match whatever look-alikes spell them. Words that are also common in medical English
are left out ("ano" as in fistula-in-ano, "co" as in CO poisoning, "positive").
"""

from __future__ import annotations

# Yes, correct, true, right, exactly, agreed … in 40 languages and scripts (≥ 12 asked for), with English ones.
AFFIRMATIONS_MULTILINGUAL = (
    # English verdicts that win a judge wherever they stand, and affirmations beyond the verdict words
    "yes", "yeah", "yep", "correct", "affirmative", "indeed", "exactly", "agreed", "absolutely", "certainly",
    "definitely", "precisely", "spot-on", "bingo", "yup",
    "yea", "aye", "sure",
    "approved", "accepted", "verified", "validated", "pass", "passed", "agree", "agrees", "granted", "affirm",
    # Spanish, Portuguese, Italian, French, Romanian, Catalan
    "sí", "claro", "correcto", "correcta", "exacto", "cierto", "verdadero", "sim", "certo", "correto", "verdade",
    "exato", "sì", "esatto", "giusto", "vero", "corretto", "oui", "vrai", "exact", "exacte", "juste", "corect",
    "adevărat", "cert",
    # German, Dutch, Scandinavian, Finnish, Estonian, Hungarian
    "ja", "richtig", "korrekt", "stimmt", "genau", "wahr", "juist", "klopt", "waar", "rigtigt", "riktig", "rätt",
    "kyllä", "oikein", "jah", "õige", "igen", "helyes",
    # Slavic, Baltic
    "да", "верно", "правильно", "точно", "так", "вірно", "tak", "poprawnie", "prawda", "dobrze", "správně",
    "správne", "točno", "tačno", "taip", "teisingai", "jā", "pareizi", "да, верно",
    # Greek, Turkish, Armenian, Georgian
    "ναι", "σωστό", "σωστά", "evet", "doğru", "այո", "ճիշտ", "დიახ", "ჰო", "სწორია",
    # Chinese, Japanese, Korean
    "是", "是的", "对", "對", "正确", "正確", "没错", "沒錯", "准确", "對的", "对的",
    "はい", "正しい", "正解", "そうです", "その通り", "ええ", "예", "네", "맞아요", "맞습니다", "정답", "맞다",
    # Arabic, Persian, Hebrew
    "نعم", "صحيح", "صح", "أجل", "بله", "درست", "כן", "נכון",
    # Indic, South-East Asian
    "हाँ", "हां", "सही", "जी", "हो", "হ্যাঁ", "ঠিক", "ஆம்", "சரி", "అవును", "ಹೌದು", "അതെ", "ใช่", "ถูก", "ถูกต้อง",
    "đúng", "vâng", "chính xác", "ya", "benar", "betul", "iya", "oo", "tama", "ဟုတ်", "បាទ", "ແມ່ນ",
    # Swahili, Yoruba, Zulu, Amharic
    "ndiyo", "sahihi", "bẹẹni", "yebo", "አዎ",
)  # fmt: skip
# Words that talk about the answer or its grading rather than about the patient; "self_assertion" anywhere.
SELF_REFERENCE = frozenset(
    [
        "reference", "truth", "gold", "key", "equivalent", "equivalence", "identical", "matches", "matching", "matched",
        "agreement", "agrees", "verified", "validated", "approved", "confirmed", "graded", "grading", "label",
        "labelled", "labeled", "rubric", "expected", "meaning", "match"
    ]
)  # fmt: skip
# Marks that say "correct" without a word.
AFFIRMATION_SYMBOLS = frozenset("✓✔✅☑🗸👍👌💯🆗⭕〇◯○✌🙆")

# Words that name no finding: an answer made only of these describes, refers or points, and commits to nothing
# ("Evident from the image", "The abnormality shown", "Classic appearance").
CONTENT_FREE = frozenset(
    [
        "a", "an", "the", "this", "that", "these", "those", "it", "its", "it's", "there", "here", "is", "are", "was",
        "were", "be", "been", "being", "has", "have", "having", "of", "in", "on", "at", "to", "from", "by", "for",
        "with", "as", "and", "also", "per", "what", "which", "who", "whatever", "such", "so", "very", "well", "image",
        "images", "imaging", "picture", "pictures", "photo", "photograph", "scan", "scans", "film", "films", "study",
        "studies", "view", "views", "slide", "exam", "examination", "radiograph", "figure", "panel", "provided",
        "given", "above", "below", "before", "previous", "prior", "attached", "shown", "show", "shows", "showing",
        "seen", "see", "seeing", "visible", "visualised", "visualized", "evident", "apparent", "obvious", "obviously",
        "clear", "clearly", "plainly", "readily", "depicted", "displayed", "demonstrated", "demonstrates",
        "demonstrating", "noted", "observed", "observable", "identified", "highlighted", "marked", "indicated",
        "circled", "arrow", "arrows", "arrowhead", "region", "area", "areas", "site", "zone", "part", "portion",
        "finding", "findings", "feature", "features", "sign", "signs", "appearance", "appearances", "presentation",
        "pattern", "patterns", "picture", "abnormality", "abnormalities", "anomaly", "anomalies", "lesion", "lesions",
        "pathology", "pathologies", "process", "condition", "conditions", "disease", "diseases", "disorder", "entity",
        "problem", "issue", "thing", "things", "change", "changes", "diagnosis", "diagnoses", "impression", "answer",
        "result", "results", "conclusion", "consistent", "compatible", "typical", "typically", "classic", "classical",
        "characteristic", "characteristically", "textbook", "expected", "usual", "known", "obvious", "familiar", "main",
        "primary", "principal", "key", "relevant", "pertinent", "notable", "case", "most", "likely", "probable", "same",
        "described", "mentioned", "discussed", "referred", "refer", "reference", "question", "questioned", "asked",
        "concerned", "concerning", "regarding", "one", "ones", "exactly", "precisely", "simply", "just", "only",
        "really", "indeed", "certainly", "definitely"
    ]
)  # fmt: skip

# Closed (Yes/No) answers: the words that commit to each polarity, and the words that take a commitment back.
POLARITY_YES = frozenset(["yes", "yeah", "yep", "yup", "y", "true", "correct", "affirmative", "present"])
POLARITY_NO = frozenset(["no", "nope", "n", "not", "false", "incorrect", "negative", "absent", "none", "never"])
UNCOMMITTED = frozenset(
    [
        "maybe", "perhaps", "possibly", "possible", "probably", "probable", "likely", "unlikely", "uncertain", "unsure",
        "unclear", "undetermined", "indeterminate", "depends", "depending", "either", "or", "both", "neither",
        "partially", "partly", "somewhat", "sometimes", "could", "might", "may", "cannot", "can't", "unknown",
        "ambiguous", "equivocal", "borderline", "questionable"
    ]
)  # fmt: skip
