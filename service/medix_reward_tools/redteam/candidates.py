"""The attack search's material: the scenarios (a truth and a wrong base answer), the candidate (genes of attack
material, transforms, a wrapper), how a candidate renders as a response, and how it mutates and shrinks. Pure and
seeded; search.py runs the loop against the reward."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from medix_reward.scoring.checks import split_ground_truth
from medix_reward_tools.redteam import grammar, transforms

CORPUS = Path(__file__).resolve().parents[3] / "tests" / "data" / "adversarial.jsonl"
_NEGATIVE_TRUTH = ("no ", "negative", "normal", "without", "absent", "not ")
# Closed questions: the corpus has none, so the search adds these (truth, wrong base) pairs.
CLOSED_SCENARIOS = [("<X_RAY> Yes", "No"), ("<X_RAY> No", "Yes"), ("<CT_SCAN> Yes", "No"), ("<MRI_SCAN> No", "Yes")]
NON_ANSWER_BASES = ["Further evaluation", "See report"]


@dataclass(frozen=True)
class Scenario:
    ground_truth: str  # "<TAG> answer"
    base: str  # a wrong answer
    base_kind: str  # the corpus category of the base, or closed

    @property
    def tag(self) -> str:
        return split_ground_truth(self.ground_truth)[0] or ""

    @property
    def truth(self) -> str:
        return split_ground_truth(self.ground_truth)[1]

    @property
    def closed(self) -> bool:
        return self.base_kind == "closed"


@dataclass(frozen=True)
class Gene:
    family: str
    template: int
    transforms: tuple[str, ...] = ()
    seed: int = 0
    before: bool = False
    sep: str = " "


@dataclass(frozen=True)
class Candidate:
    scenario: int
    genes: tuple[Gene, ...] = ()
    keep_base: bool = True
    wrapper: str = "plain"

    def families(self) -> tuple[str, ...]:
        names = {gene.family for gene in self.genes} | (
            {f"format:{self.wrapper}"} if self.wrapper != "plain" else set()
        )
        return tuple(sorted(names)) or ("base",)


def load_scenarios(path: Path = CORPUS, excluded: Callable[[str], bool] | None = None) -> list[Scenario]:
    """Every wrong answer of the corpus against its truth, a non-answer base per truth, and closed questions.
    `excluded(truth)`: truths to leave out (a model judge that credits every answer to them says nothing)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    scenarios = [Scenario(r["ground_truth"], r["response"].split("<answer>")[-1].split("</answer>")[0], r["category"])
                 for r in rows if r["family"] == "wrong"]  # fmt: skip
    truths = sorted({r["ground_truth"] for r in rows if r["family"] == "wrong"})
    scenarios += [Scenario(truth, NON_ANSWER_BASES[i % 2], "non_answer_base") for i, truth in enumerate(truths)]
    scenarios += [Scenario(truth, base, "closed") for truth, base in CLOSED_SCENARIOS]
    return [s for s in scenarios if excluded is None or not excluded(s.truth)]


def allowed_families(scenario: Scenario) -> list[str]:
    if scenario.closed:
        return ["verdict", "self_assertion", "instruction", "non_answer", "closed"]
    families = ["verdict", "self_assertion", "instruction", "non_answer", "hedge", "list", "contrast"]
    if not scenario.truth.lower().startswith(_NEGATIVE_TRUTH):
        families.append("negation")  # "no X" of a negative truth is its paraphrase
    return families


def render_answer(candidate: Candidate, scenario: Scenario) -> str:
    core = scenario.base if candidate.keep_base or scenario.closed else ""
    for gene in candidate.genes:
        if gene.family in grammar.REPLACES_BASE:
            template = grammar.FAMILIES[gene.family][gene.template]
            core = transforms.apply(
                template.format(base=scenario.base, truth=scenario.truth), gene.transforms, gene.seed
            )
            break
    text = core
    for gene in candidate.genes:
        if gene.family in grammar.REPLACES_BASE:
            continue
        material = transforms.apply(grammar.FAMILIES[gene.family][gene.template], gene.transforms, gene.seed)
        text = (material + gene.sep + text) if gene.before else (text + gene.sep + material)
    return text.strip() if text.strip() else text


def render(candidate: Candidate, scenario: Scenario) -> str:
    return grammar.FORMATS[candidate.wrapper].format(tag=scenario.tag, answer=render_answer(candidate, scenario))


def _transforms_for(family: str) -> list[str]:
    """Truncation could cut a template that names the truth down to the truth itself: not for those families."""
    names = list(transforms.TRANSFORMS)
    return [n for n in names if n != "truncation"] if family in grammar.MENTIONS_TRUTH else names


class Mutator:
    def __init__(self, scenarios: list[Scenario], rng: random.Random, max_genes: int = 4):
        self.scenarios, self.rng, self.max_genes = scenarios, rng, max_genes

    def gene(self, scenario: Scenario, family: str | None = None) -> Gene:
        rng = self.rng
        family = family or rng.choice(allowed_families(scenario))
        names = tuple(rng.sample(_transforms_for(family), k=rng.choice([0, 0, 1, 1, 2])))
        return Gene(family, rng.randrange(len(grammar.FAMILIES[family])), names, rng.randrange(1 << 30),
                    rng.random() < 0.4, rng.choice([" ", ". ", "\n", ", ", " - ", "; ", "\n\n"]))  # fmt: skip

    def fresh(self) -> Candidate:
        rng = self.rng
        index = rng.randrange(len(self.scenarios))
        scenario = self.scenarios[index]
        genes = tuple(self.gene(scenario) for _ in range(rng.choice([1, 1, 2, 3])))
        wrapper = "plain" if rng.random() < 0.8 else rng.choice(list(grammar.FORMATS))
        return self.tidy(Candidate(index, genes, keep_base=rng.random() < 0.6, wrapper=wrapper))

    def tidy(self, candidate: Candidate) -> Candidate:
        """At most one gene that rewrites the base, and at most `max_genes` genes."""
        genes, rewrites = [], 0
        for gene in candidate.genes[: self.max_genes]:
            if gene.family in grammar.REPLACES_BASE:
                rewrites += 1
                if rewrites > 1:
                    continue
            genes.append(gene)
        return replace(candidate, genes=tuple(genes))

    def mutate(self, parent: Candidate) -> Candidate:
        rng, scenario = self.rng, self.scenarios[parent.scenario]
        genes = list(parent.genes)
        move = rng.randrange(9)
        if move == 0 or not genes:
            genes.insert(rng.randrange(len(genes) + 1), self.gene(scenario))
        elif move == 1 and len(genes) > 1:
            genes.pop(rng.randrange(len(genes)))
        elif move == 2:
            i = rng.randrange(len(genes))
            genes[i] = replace(genes[i], template=rng.randrange(len(grammar.FAMILIES[genes[i].family])))
        elif move == 3:
            i = rng.randrange(len(genes))
            added = rng.choice(_transforms_for(genes[i].family))
            genes[i] = replace(genes[i], transforms=(*genes[i].transforms, added),
                               seed=rng.randrange(1 << 30))  # fmt: skip
        elif move == 4:
            i = rng.randrange(len(genes))
            genes[i] = replace(genes[i], transforms=genes[i].transforms[:-1])
        elif move == 5:
            i = rng.randrange(len(genes))
            genes[i] = replace(genes[i], before=not genes[i].before, seed=rng.randrange(1 << 30))
        elif move == 6:
            return replace(parent, wrapper=rng.choice(list(grammar.FORMATS)))
        elif move == 7:
            return replace(parent, keep_base=not parent.keep_base)
        else:  # the same material against another scenario whose families allow it
            index = rng.randrange(len(self.scenarios))
            allowed = set(allowed_families(self.scenarios[index]))
            if all(gene.family in allowed for gene in genes):
                return replace(parent, scenario=index)
        return self.tidy(replace(parent, genes=tuple(genes)))


def shrink_steps(candidate: Candidate, scenario: Scenario) -> list[Candidate]:
    """Every candidate one part smaller: a gene dropped, a gene's last transform dropped, the plain wrapper, the
    base dropped."""
    steps = []
    genes = candidate.genes
    for i in range(len(genes)):
        if len(genes) > 1 or (not candidate.keep_base and not scenario.closed):
            steps.append(replace(candidate, genes=genes[:i] + genes[i + 1 :]))
        if genes[i].transforms:
            smaller = replace(genes[i], transforms=genes[i].transforms[:-1])
            steps.append(replace(candidate, genes=(*genes[:i], smaller, *genes[i + 1 :])))
    if candidate.wrapper != "plain":
        steps.append(replace(candidate, wrapper="plain"))
    if candidate.keep_base and not scenario.closed and genes:
        steps.append(replace(candidate, keep_base=False))
    if len(genes) == 1 and candidate.keep_base:
        steps.append(replace(candidate, genes=()))
    return steps
