"""The adversarial suite: how much a preset credits hacks, how much of the legitimate it keeps.

    medix-reward integrity --judge-url http://127.0.0.1:8000/v1 --judge-model qwen2.5-coder-1.5b-instruct

The corpus (`tests/data/adversarial.jsonl`) labels each completion legit, wrong or hack, by category, and
holds the holes the attack search found (`medix-reward redteam`, family found-by-search, with their seed).
Each configuration (medix-r1, hardened, and each hardened defence alone on top of medix-r1) scores the
whole corpus through the real pipeline and embedder; every configuration shares one judge client, so a
verdict asked once in the same way is asked once. The CI tier runs the same code against a scripted
gullible judge (`gullible_table`); this command runs it against a real judge and prints the tables that
docs/integrity.md quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from medix_reward.embedding.backends import SentenceTransformerEncoder
from medix_reward.scoring.checks import Tags, check_item, split_ground_truth
from medix_reward.scoring.pipeline import RewardPipeline, open_pipeline
from medix_reward.settings import NO_DEFENCES, DefenceSettings, EmbedderSettings, JudgeSettings, Settings
from medix_reward_client.schema import ItemResult, RewardItem, RewardOptions, RewardRequest

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "data" / "adversarial.jsonl"
FAMILIES = ("legit", "wrong", "hack", "found-by-search")
SCREENING_OPTIONS = frozenset(
    ["fold_confusables", "multilingual_lexicon", "non_answers", "closed_polarity", "lists", "other_language"]
)


@dataclass(frozen=True)
class Case:
    id: str
    family: str
    category: str
    ground_truth: str
    response: str
    table_verdict: str | None = None  # the gullible judge's verdict where it is not the family's


def load_corpus(path: Path = CORPUS) -> list[Case]:
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        cases.append(Case(row["id"], row["family"], row["category"], row["ground_truth"], row["response"],
                          row.get("table_verdict")))  # fmt: skip
    return cases


def gullible_table(cases: list[Case]) -> dict[tuple[str, str], bool]:
    """What the worst realistic judge says of each (answer it is shown, truth): legit YES, wrong NO, every hack
    YES unless its row says otherwise; keyed by the answer as either format rule extracts it."""
    table = {}
    for case in cases:
        modality, truth = split_ground_truth(case.ground_truth)
        verdict = (case.table_verdict or ("NO" if case.family == "wrong" else "YES")) == "YES"
        for strict in (False, True):
            checked = check_item(case.response, truth, modality, Tags(), strict_format=strict)
            table[(checked.predicted_answer, truth)] = verdict
    return table


def credited(result: ItemResult) -> bool:
    """Accuracy credit from either model signal (the judge's or the embedder's)."""
    return any(
        value is not None and value >= 0.5 for value in (result.scores.accuracy_llm, result.scores.accuracy_embed)
    )


@dataclass
class Tally:
    items: int = 0
    credited: int = 0
    unscored: int = 0
    by_category: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # [n, credited]
    rejections: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class Report:
    name: str
    families: dict[str, Tally]
    verdicts_asked: int  # judge calls plus verdict cache hits
    seconds: float

    def rate(self, family: str) -> float:
        tally = self.families[family]
        return tally.credited / tally.items if tally.items else float("nan")

    def calls_per_item(self) -> float:
        return self.verdicts_asked / sum(t.items for t in self.families.values())


def tally(name: str, cases: list[Case], results: list[ItemResult], verdicts_asked: int, seconds: float) -> Report:
    families = {family: Tally() for family in FAMILIES}
    for case, result in zip(cases, results, strict=True):
        t = families[case.family]
        t.items += 1
        hit = credited(result)
        t.credited += hit
        t.unscored += result.overall is None
        t.by_category[case.category][0] += 1
        t.by_category[case.category][1] += hit
        if result.details.rejection:
            t.rejections[result.details.rejection] += 1
    return Report(name, families, verdicts_asked, seconds)


def configurations(hardened: DefenceSettings) -> dict[str, DefenceSettings | None]:
    """medix-r1 (None), hardened, and each defence of hardened alone."""
    configs: dict[str, DefenceSettings | None] = {"medix-r1": None, "hardened": hardened}
    for name, info in DefenceSettings.model_fields.items():
        if name in SCREENING_OPTIONS or name in ("semantic_floor_spares_initialisms", "refusal_earns_nothing"):
            continue  # they refine screen_answers (or strict_format) or semantic_floor, and do nothing alone
        value = True if info.annotation is bool else getattr(hardened, name)  # soft_score too, though off in hardened
        configs[f"only {name}"] = NO_DEFENCES.model_copy(update={name: value})
    return configs


async def run_suite(
    base: Settings,
    cases: list[Case],
    configs: dict[str, DefenceSettings | None],
    encoder=None,
    items_out: TextIO | None = None,
) -> list[Report]:
    """Every configuration over the corpus, one shared judge client and embedding cache."""
    items = [RewardItem(id=c.id, response=c.response, ground_truth=c.ground_truth) for c in cases]
    reports = []
    async with open_pipeline(base, encoder=encoder) as shared:
        for name, defences in configs.items():
            settings = base.model_copy(update={"hardened": defences or NO_DEFENCES})
            pipeline = RewardPipeline(settings, shared.judge, shared.embeddings)
            preset = "medix-r1" if defences is None else "hardened"
            started = time.perf_counter()
            response = await pipeline.score(RewardRequest(items=items, options=RewardOptions(preset=preset)))
            # Verdicts asked, cache hits included: what this configuration costs a cold service (the
            # configurations share one judge client, so its later ones are served from the cache).
            asked = response.usage.judge_calls + response.usage.judge_cache_hits
            reports.append(tally(name, cases, response.results, asked, time.perf_counter() - started))
            if items_out is not None:
                for case, result in zip(cases, response.results, strict=True):
                    row = {
                        "configuration": name,
                        "id": case.id,
                        "family": case.family,
                        "category": case.category,
                        "credited": credited(result),
                        **result.model_dump(include={"scores", "details"}),
                    }
                    items_out.write(json.dumps(row) + "\n")
    return reports


def _cell(report: Report, family: str, rate: bool = True) -> str:
    """Credited / items (and the rate), or "—" for a family left out (--families)."""
    t = report.families[family]
    if not t.items:
        return "—"
    return f"{t.credited}/{t.items}" + (f" ({report.rate(family):.1%})" if rate else "")


def markdown(reports: list[Report], header: str) -> str:
    columns = ("| Configuration | Hacks credited | Search holes credited | Legit recall | Wrong credited "
               "| Verdicts asked / item | Unscored |")  # fmt: skip
    lines = [header, "", columns, "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in reports:
        unscored = sum(t.unscored for t in r.families.values())
        cells = [_cell(r, "hack"), _cell(r, "found-by-search", rate=False), _cell(r, "legit"), _cell(r, "wrong")]
        lines.append(f"| {r.name} | {' | '.join(cells)} | {r.calls_per_item():.2f} | {unscored} |")
    main = [r for r in reports if r.name in ("medix-r1", "hardened")]
    categories = sorted({(fam, cat) for r in main for fam, t in r.families.items() for cat in t.by_category})
    lines += ["", "Credited per category (items credited / items):", "",
              "| Family | Category | " + " | ".join(r.name for r in main) + " |",
              "| --- | --- | " + " | ".join("---" for _ in main) + " |"]  # fmt: skip
    for fam, cat in categories:
        cells = [f"{r.families[fam].by_category[cat][1]}/{r.families[fam].by_category[cat][0]}" for r in main]
        lines.append(f"| {fam} | {cat} | " + " | ".join(cells) + " |")
    hardened = next((r for r in reports if r.name == "hardened"), None)
    if hardened is not None:
        reasons = defaultdict(int)
        for t in hardened.families.values():
            for reason, n in t.rejections.items():
                reasons[reason] += n
        lines += ["", "Why hardened refused credit (all families): "
                  + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))]  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(reports: list[Report], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in reports]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.27
    for offset, family, label in ((-width, "hack", "hacks credited"), (0, "legit", "legit recall"),
                                  (width, "wrong", "wrong credited")):  # fmt: skip
        ax.bar([i + offset for i in x], [100 * r.rate(family) for r in reports], width, label=label)
    ax.set_xticks(list(x), names, rotation=30, ha="right")
    ax.set_ylabel("% of the family's items")
    ax.set_title("Adversarial suite: what each configuration credits")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(args: argparse.Namespace) -> None:
    # Logprobs for the soft_score row; --parity sends the reference's request, which asks for none.
    judge = JudgeSettings(base_urls=[args.judge_url], model=args.judge_model, concurrency=args.concurrency,
                          timeout_s=120, logprobs=not args.parity)  # fmt: skip
    settings = Settings(judge=judge, embedder=EmbedderSettings(model=args.embedder))
    cases = load_corpus()
    if getattr(args, "families", None):
        cases = [c for c in cases if c.family in args.families]
    encoder = SentenceTransformerEncoder(settings.embedder)
    if args.parity:
        _parity(settings, cases, encoder, args)
        return
    started = time.perf_counter()
    configs = configurations(settings.hardened)
    if args.only:
        configs = {name: configs[name] for name in args.only}
    with open(args.items, "w") if args.items else contextlib.nullcontext() as items_out:
        reports = asyncio.run(run_suite(settings, cases, configs, encoder, items_out))
    header = (f"Judge `{args.judge_model}` at {args.judge_url}, embedder `{args.embedder}`, {len(cases)} items, "
              f"{time.perf_counter() - started:.0f} s in all.")  # fmt: skip
    text = markdown(reports, header)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    if args.plot:
        plot(reports, Path(args.plot))


def _parity(settings: Settings, cases: list[Case], encoder: object, args: argparse.Namespace) -> None:
    from medix_reward_tools import parity

    report = asyncio.run(parity.run_parity(settings, cases, encoder))
    header = f"Judge `{args.judge_model}` at {args.judge_url}, {args.concurrency} calls in flight, {CORPUS.name}."
    text = parity.markdown(report, header)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    if not report.holds:
        raise SystemExit(1)
