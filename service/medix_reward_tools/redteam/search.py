"""The attack search: from wrong base answers, mutate attack material and keep what raises `overall`.

An evolutionary loop with a fixed seed: each generation is one POST /reward of `batch` candidates, children of
tournament-picked parents (add, drop or change a piece of material, add or drop a transform, move it, change
the wrapper or the base) or fresh random ones. Oracle: the base answer is wrong and material never holds the
truth (the families that mention it carry their own label), so a candidate the reward credits beyond what
its plain base earns is a hole. Each hole is shrunk (parts dropped while it stays credited) to its minimal
form; holes are counted once per minimal form.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from medix_reward_tools.redteam.candidates import (
    Candidate,
    Mutator,
    Scenario,
    render,
    render_answer,
    shrink_steps,
)


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
