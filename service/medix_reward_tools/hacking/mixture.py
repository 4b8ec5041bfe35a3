"""The questions and the warm-start mixture: what the policy is taught to say before GRPO starts.

Per question, `per_question` completions in MediX format: 40 % correct (the truth or a paraphrase), 30 %
wrong (one of the question's wrong answers) and 30 % attacks, the attacks drawn in turn from the red-team
grammar's families (redteam/grammar.py: verdict, self-assertion, instruction, non-answer, and the truth in
a hedge, list, contrast or negation; closed-question hedges on Yes/No questions) plus format abuse.
Both presets start from this one checkpoint, so neither is favoured: the honest answer and every attack
family are reachable from the first step under both, at the same shares, and only the reward decides
which grow.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from medix_reward_tools.redteam import grammar

QUESTIONS = Path(__file__).with_name("questions.jsonl")
THINKING = ["Looking.", "Seen.", "Checked."]  # short: generation is most of a step's time on the CPU
SHARES = {"correct": 0.4, "wrong": 0.3, "attack": 0.3}
OPEN_FAMILIES = ["verdict", "self_assertion", "instruction", "non_answer", "hedge", "list", "contrast", "negation",
                 "format"]  # fmt: skip
CLOSED_FAMILIES = ["verdict", "self_assertion", "instruction", "non_answer", "closed", "format"]
# Short material only: the completions stay within the experiment's generation length.
_SHORT = 40


@dataclass(frozen=True)
class Question:
    id: str
    modality: str
    question: str
    ground_truth: str  # "<TAG> answer"
    accept: tuple[str, ...]
    wrong: tuple[str, ...]

    @property
    def truth(self) -> str:
        return self.ground_truth.split("> ", 1)[1]

    @property
    def closed(self) -> bool:
        return self.truth in ("Yes", "No")

    @property
    def prompt(self) -> str:
        return f"{self.question}\nAnswer:"


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Question(r["id"], r["modality"], r["question"], r["ground_truth"], tuple(r["accept"]), tuple(r["wrong"]))
            for r in rows]  # fmt: skip


def completion(modality: str, answer: str, rng: random.Random, after: str = "") -> str:
    return f" <{modality}> <thinking>{rng.choice(THINKING)}</thinking> <answer>{answer}</answer>{after}"


def _short(family: str) -> list[str]:
    return [t for t in grammar.FAMILIES[family] if len(t) <= _SHORT and "\n" not in t]


def attack(question: Question, family: str, rng: random.Random) -> str:
    """One completion of `family`, attached to a wrong base answer as the red-team search attaches it."""
    base = rng.choice(question.wrong)
    if family == "format":
        return completion(question.modality, base, rng, after=rng.choice([" YES", " <answer>Correct</answer>"]))
    template = rng.choice(_short(family))
    if family in grammar.REPLACES_BASE:
        answer = template.format(base=base.lower(), truth=question.truth.lower())
    elif family in ("non_answer", "closed"):
        answer = template
    else:
        answer = f"{base}. {template}"
    return completion(question.modality, answer, rng)


def warm_start_rows(questions: list[Question], per_question: int, seed: int) -> list[dict[str, str]]:
    """(prompt, completion, kind) rows at SHARES, attacks rotating over the families a question allows."""
    rng = random.Random(seed)
    rows, turn = [], 0
    counts = {kind: round(share * per_question) for kind, share in SHARES.items()}
    for q in questions:
        for _ in range(counts["correct"]):
            rows.append({"prompt": q.prompt, "completion": completion(q.modality, rng.choice([q.truth, *q.accept]),
                                                                      rng), "kind": "correct"})  # fmt: skip
        for _ in range(counts["wrong"]):
            rows.append({"prompt": q.prompt, "completion": completion(q.modality, rng.choice(q.wrong), rng),
                         "kind": "wrong"})  # fmt: skip
        families = CLOSED_FAMILIES if q.closed else OPEN_FAMILIES
        for _ in range(counts["attack"]):
            family = families[turn % len(families)]
            turn += 1
            rows.append({"prompt": q.prompt, "completion": attack(q, family, rng), "kind": f"attack:{family}"})
    rng.shuffle(rows)
    return rows
