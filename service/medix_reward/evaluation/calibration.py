"""Calibration: items of known label the evaluation judge grades before a run's samples, and the verdict on it.

Per kind, balanced labels (half right, half wrong), so a judge that answers everything one way agrees on half:
binary items span paraphrase, units and number words, yes/no, laterality and clearly wrong answers; graded
items pair ten short reports with a faithful rewording (label 1: a grade of 3 or more expected) and a
contradicting one (label 0: below 3). Each item is asked in both reply orders (eval_templates.reply_format);
`summarise` is pure: agreement with the labels, the share of items whose verdict the order changed, and
whether the judge passes the thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

from medix_reward_client.schema import Calibration, EvalKind


@dataclass(frozen=True)
class KnownItem:
    category: str
    question: str
    reference: str
    response: str
    label: int  # binary: the right score; graded: 1 = a grade of 3 or more expected, 0 = below 3


_BINARY = [
    ("paraphrase", "Which drug reverses opioid overdose?", "Naloxone", "Naloxone (Narcan) is the antidote.", 1),
    ("paraphrase", "What is the most likely diagnosis?", "Myocardial infarction", "This is a heart attack.", 1),
    ("paraphrase", "What is the first-line treatment for anaphylaxis?", "Intramuscular adrenaline",
     "Epinephrine given IM.", 1),
    ("paraphrase", "What imaging modality is shown?", "MRI", "Magnetic resonance imaging", 1),
    ("units and numbers", "How many kidneys are seen?", "2", "Two kidneys.", 1),
    ("units and numbers", "What is the usual adult dose?", "500 mg", "0.5 g", 1),
    ("units and numbers", "What is the patient's temperature?", "39 °C", "39 degrees Celsius.", 1),
    ("units and numbers", "How many chambers does the human heart have?", "4", "Three.", 0),
    ("units and numbers", "How many vertebrae are in the cervical spine?", "7", "Twelve.", 0),
    ("units and numbers", "What dose of aspirin is given?", "300 mg", "30 mg", 0),
    ("yes/no", "Is there a pneumothorax?", "No", "No pneumothorax is seen.", 1),
    ("yes/no", "Is the heart enlarged?", "Yes", "Yes.", 1),
    ("yes/no", "Is there pleural effusion?", "yes", "Yes, a small effusion is present.", 1),
    ("yes/no", "Is there a fracture?", "yes", "No fracture is seen.", 0),
    ("yes/no", "Does the drug reduce mortality?", "no", "Yes, it does.", 0),
    ("yes/no", "Is the liver normal?", "No", "Yes, it looks normal.", 0),
    ("laterality", "Which lung has the mass?", "Left", "The left lung.", 1),
    ("laterality", "Where is the fracture?", "Right femur", "In the right thigh bone.", 1),
    ("laterality", "Which side is the effusion on?", "Right", "Left", 0),
    ("laterality", "Which kidney is enlarged?", "Left kidney", "The right kidney.", 0),
    ("clearly wrong", "Which organ is inflamed in hepatitis?", "Liver", "The kidney.", 0),
    ("clearly wrong", "What organism causes tuberculosis?", "Mycobacterium tuberculosis",
     "Streptococcus pneumoniae", 0),
    ("clearly wrong", "Which vitamin deficiency causes scurvy?", "Vitamin C", "Vitamin D", 0),
    ("clearly wrong", "Which hormone lowers blood glucose?", "Insulin", "Glucagon", 0),
]  # fmt: skip

_REPORT = "Generate a detailed report based on the scan."
_SUMMARY = "Write a short summary of the report."
_GRADED = [  # (instruction, reference, faithful rewording, contradicting text)
    (_REPORT, "Small left pleural effusion. No pneumothorax. Heart size normal.",
     "A small effusion on the left; no pneumothorax; normal cardiac size.", "Large right pneumothorax. Cardiomegaly."),
    (_REPORT, "Right lower lobe consolidation consistent with pneumonia.",
     "Consolidation in the right lower lobe, likely pneumonia.", "Clear lungs. No consolidation."),
    (_REPORT, "Displaced fracture of the left distal radius.", "Left distal radius fracture with displacement.",
     "No fracture. Normal wrist."),
    (_REPORT, "Cardiomegaly with pulmonary edema.", "Enlarged heart and pulmonary oedema.",
     "Normal heart size, clear lungs, no edema."),
    (_REPORT, "No acute cardiopulmonary abnormality.", "Normal chest radiograph; nothing acute.",
     "Bilateral pneumonia with large effusions."),
    (_REPORT, "Endotracheal tube 4 cm above the carina. Lungs clear.",
     "ET tube tip about 4 cm above the carina; clear lungs.",
     "The endotracheal tube is in the right main bronchus and the left lung has collapsed."),
    (_SUMMARY, "Free air under the diaphragm, concerning for perforation.",
     "Pneumoperitoneum below the diaphragm, suggesting a perforated viscus.", "No free air. Normal bowel gas pattern."),
    (_SUMMARY, "Mild degenerative changes of the thoracic spine. No acute fracture.",
     "Mild thoracic spondylosis without acute fracture.", "Acute compression fracture of T8."),
    (_SUMMARY, "Large left-sided pneumothorax with mediastinal shift.",
     "Big left pneumothorax pushing the mediastinum across.", "Small right pleural effusion only."),
    (_SUMMARY, "Right upper lobe mass suspicious for malignancy.",
     "A mass in the right upper lobe, concerning for cancer.", "No mass. Lungs are normal."),
]  # fmt: skip

ITEMS: dict[EvalKind, list[KnownItem]] = {
    "binary": [KnownItem(*row) for row in _BINARY],
    "graded": [item for q, ref, good, bad in _GRADED
               for item in (KnownItem("faithful", q, ref, good, 1), KnownItem("contradicting", q, ref, bad, 0))],
}  # fmt: skip


def verdict(kind: EvalKind, score: float | None) -> int | None:
    """A score as a label: binary 1 when more than half the rounds said 1; graded 1 from 3 up."""
    if score is None:
        return None
    return int(score >= 3) if kind == "graded" else int(score > 0.5)


def summarise(
    kind: EvalKind, items: list[KnownItem], first: list[float | None], flipped: list[float | None] | None,
    min_agreement: float, max_order_flips: float,
) -> Calibration:  # fmt: skip
    """The judge's scores on `items` in the first reply order and (None: not asked) the flipped one, judged."""
    verdicts = [verdict(kind, score) for score in first]
    others = None if flipped is None else [verdict(kind, score) for score in flipped]
    every = verdicts + (others or [])
    labels = [item.label for item in items] * (1 if others is None else 2)
    agreement = sum(v == label for v, label in zip(every, labels, strict=True)) / len(every)
    flips = None if others is None else sum(a != b for a, b in zip(verdicts, others, strict=True)) / len(items)
    problems = []
    if agreement < min_agreement:
        problems.append(f"judge calibration: {kind} agreement with known labels {agreement:.0%} < {min_agreement:.0%}")
    if flips is not None and flips > max_order_flips:
        problems.append(f"order bias: flipping the reply order changed {flips:.0%} of {kind} verdicts "
                        f"> {max_order_flips:.0%}")  # fmt: skip
    return Calibration(
        kind=kind, items=len(items), agreement=agreement, order_flips=flips, unreadable=every.count(None),
        passed=not problems, min_agreement=min_agreement, max_order_flips=max_order_flips,
        problem="; ".join(problems) or None,
    )  # fmt: skip
