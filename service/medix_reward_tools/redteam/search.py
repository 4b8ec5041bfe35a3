"""The attack search: from wrong base answers, mutate attack material and keep what raises `overall`.

An evolutionary loop with a fixed seed: each generation is one POST /reward of `batch` candidates, children of
tournament-picked parents (add, drop or change a piece of material, add or drop a transform, move it, change
the wrapper or the base) or fresh random ones. Oracle: the base answer is wrong and material never holds the
truth (the families that mention it carry their own label), so a candidate the reward credits beyond what
its plain base earns is a hole. Each hole is shrunk (parts dropped while it stays credited) to its minimal
form; holes are counted once per minimal form.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
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


@dataclass
class Outcome:
    overall: float | None
    credited: bool
    judge_yes: bool
    screened: bool
    rejection: str | None


Evaluate = Callable[[list[tuple[str, str]]], list[Outcome]]  # (response, ground truth) pairs → outcomes


@dataclass
class Hole:
    preset: str
    seed: int
    families: tuple[str, ...]
    ground_truth: str
    response: str
    answer: str
    minimal_response: str
    minimal_answer: str
    minimal_families: tuple[str, ...]
    overall: float | None
    found_at: int  # evaluations spent when it was found
    shrunk: bool = True  # False: past the shrink limit of its family combination, minimal is the form found


@dataclass
class SearchResult:
    preset: str
    seed: int
    evaluations: int
    shrink_evaluations: int
    seconds: float
    holes: list[Hole] = field(default_factory=list)
    bases_credited: int = 0
    scenarios: int = 0
    minimal_forms: int = 0  # distinct minimal forms among the holes shrunk

    def by_family(self) -> Counter[str]:
        """Holes per family of attack material they hold (a hole with two families counts in both)."""
        return Counter(family for hole in self.holes for family in hole.families)


def _fitness(outcome: Outcome) -> float:
    return (outcome.overall or 0.0) + 0.02 * outcome.judge_yes + 0.01 * (not outcome.screened)


def search(
    evaluate: Evaluate,
    scenarios: list[Scenario],
    *,
    preset: str,
    budget: int,
    seed: int = 0,
    batch: int = 50,
    population: int = 40,
    explore: float = 0.3,
    shrink_limit: int = 3,
    max_seconds: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> SearchResult:
    """Spend `budget` evaluations searching for holes under `preset` (shrinking costs extra, counted apart), or
    stop after `max_seconds` (a slow judge): the result says how many evaluations it made."""
    started = time.perf_counter()
    rng = random.Random(seed)
    mutator = Mutator(scenarios, rng)
    result = SearchResult(preset, seed, 0, 0, 0.0, scenarios=len(scenarios))
    bases = evaluate([(render(Candidate(i), s), s.ground_truth) for i, s in enumerate(scenarios)])
    base_overall = [outcome.overall or 0.0 for outcome in bases]
    result.bases_credited = sum(outcome.credited for outcome in bases)
    pool: list[tuple[float, Candidate]] = []
    seen: set[tuple[str, str]] = set()
    minimal_seen: set[tuple[str, str]] = set()
    niches: Counter[tuple[int, tuple[str, ...]]] = Counter()
    shrunk: Counter[tuple[str, ...]] = Counter()

    def is_hole(candidate: Candidate, outcome: Outcome) -> bool:
        return outcome.credited and (outcome.overall or 0.0) > base_overall[candidate.scenario] + 1e-9

    while result.evaluations < budget and (max_seconds is None or time.perf_counter() - started < max_seconds):
        children: list[Candidate] = []
        tries = 0
        while len(children) < min(batch, budget - result.evaluations) and tries < 20 * batch:
            tries += 1
            if not pool or rng.random() < explore:
                child = mutator.fresh()
            else:
                contenders = rng.sample(pool, k=min(3, len(pool)))
                child = mutator.mutate(max(contenders, key=lambda pair: pair[0])[1])
            scenario = scenarios[child.scenario]
            key = (render(child, scenario), scenario.ground_truth)
            if key not in seen:
                seen.add(key)
                children.append(child)
        if not children:
            break
        outcomes = evaluate([(render(c, scenarios[c.scenario]), scenarios[c.scenario].ground_truth) for c in children])
        result.evaluations += len(children)
        if progress is not None:
            progress(len(children))
        found: list[tuple[Candidate, Outcome, bool]] = []
        for child, outcome in zip(children, outcomes, strict=True):
            fitness = _fitness(outcome)
            if is_hole(child, outcome):
                niche = (child.scenario, child.families())
                niches[niche] += 1
                shrunk[child.families()] += 1
                # Shrinking costs evaluations: the first few holes of each family combination are shrunk.
                found.append((child, outcome, shrunk[child.families()] <= shrink_limit))
                fitness -= 0.5 * niches[niche]  # a found hole stops paying: look elsewhere
            pool.append((fitness, child))
        _record(result, found, scenarios, evaluate, is_hole, minimal_seen)
        pool.sort(key=lambda pair: -pair[0])
        del pool[population:]
    result.seconds = time.perf_counter() - started
    return result


def _record(
    result: SearchResult,
    found: list[tuple[Candidate, Outcome, bool]],
    scenarios: list[Scenario],
    evaluate: Evaluate,
    is_hole: Callable[[Candidate, Outcome], bool],
    minimal_seen: set[tuple[str, str]],
) -> None:
    """Every hole is kept; those marked are shrunk first, all together (one request per round): each round tries
    every one-part-smaller form of each and keeps the first that is still a hole."""
    minimal = [candidate for candidate, _, _ in found]
    shrinking = [i for i, (_, _, shrink) in enumerate(found) if shrink]
    while shrinking:
        steps = [(i, step) for i in shrinking for step in shrink_steps(minimal[i], scenarios[minimal[i].scenario])]
        if not steps:
            break
        pairs = [(render(step, scenarios[step.scenario]), scenarios[step.scenario].ground_truth) for _, step in steps]
        outcomes = evaluate(pairs)
        result.shrink_evaluations += len(steps)
        progressed = []
        for (i, step), outcome in zip(steps, outcomes, strict=True):
            if i not in progressed and is_hole(step, outcome):
                minimal[i] = step
                progressed.append(i)
        shrinking = progressed
    for (candidate, outcome, shrink), smallest in zip(found, minimal, strict=True):
        scenario = scenarios[candidate.scenario]
        if shrink:
            minimal_seen.add((render(smallest, scenario), scenario.ground_truth))
        result.holes.append(
            Hole(
                result.preset,
                result.seed,
                candidate.families(),
                scenario.ground_truth,
                render(candidate, scenario),
                render_answer(candidate, scenario),
                render(smallest, scenario),
                render_answer(smallest, scenario),
                smallest.families(),
                outcome.overall,
                result.evaluations,
                shrunk=shrink,
            )
        )
    result.minimal_forms = len(minimal_seen)


def hole_rows(results: list[SearchResult]) -> list[dict[str, object]]:
    return [asdict(hole) for result in results for hole in result.holes]


def table(results: list[SearchResult]) -> str:
    """Holes per family and preset, Markdown."""
    presets = [r.preset for r in results]
    families = sorted({family for r in results for family in r.by_family()})
    lines = ["| Family (holes holding it) | " + " | ".join(presets) + " |",
             "| --- | " + " | ".join("---" for _ in presets) + " |"]  # fmt: skip
    for family in families:
        lines.append(f"| {family} | " + " | ".join(str(r.by_family()[family]) for r in results) + " |")
    rows = [
        ("**holes** (credited beyond their plain base)", lambda r: f"**{len(r.holes)}**"),
        ("distinct minimal forms (of those shrunk)", lambda r: str(r.minimal_forms)),
        ("plain wrong bases credited", lambda r: f"{r.bases_credited}/{r.scenarios}"),
        ("evaluations (search + shrink)", lambda r: f"{r.evaluations} + {r.shrink_evaluations}"),
        ("time", lambda r: f"{r.seconds:.0f} s"),
    ]
    for name, cell in rows:
        lines.append(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")
    return "\n".join(lines) + "\n"
