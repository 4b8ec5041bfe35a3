"""Evaluating a checkpoint offline: a JSONL file of samples through `POST /evaluate`, resumably, and its report.

Each input line is one `EvaluateItem` (`question`, `reference`, `response`, `task`, optional `kind`, `choices`,
`id`). Each output line is `{"line": N, ...EvaluateResult}`. A sample already scored in the output is skipped;
a failed one is asked again (its new row supersedes the old). The report is always computed from the whole
output file: per task n, accuracy (binary) or mean 0-5 score (graded) with a 95% confidence interval, and
failures; the macro average over tasks, as MediX-R1's tables give it (a graded task counts as mean / 5).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from medix_reward_client._core import APIStatusError, RewardError
from medix_reward_client.client import AsyncRewardClient
from medix_reward_client.offline import Progress, pending, read_rows, run_chunks
from medix_reward_client.schema import MEDIX_R1_TASKS, Calibration, EvaluateItem, EvaluateOptions, EvaluateResult

# Student's t, two-sided 95%, by degrees of freedom (1-30); beyond, the normal 1.96.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion: sound at small n and at 0 % or 100 %."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: list[float]) -> tuple[float, float]:
    """Mean ± t·s/√n; a single value has no spread to estimate (its interval is the value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean
    t = _T95[len(values) - 2] if len(values) - 1 <= len(_T95) else 1.96
    half = t * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


@dataclass
class TaskRow:
    task: str
    kind: str
    n: int  # samples scored
    failed: int
    score: float | None  # accuracy (0-1) or mean score (0-5)
    ci_low: float | None
    ci_high: float | None
    by_rule: int = 0
    labelled: int = 0  # scored samples that carry a `label`
    agree: int = 0  # of those, scored as labelled (graded: both 3 or more, or both below)

    @property
    def normalised(self) -> float | None:
        """On 0-1, as the macro average takes it: accuracy, or the mean 0-5 score / 5."""
        if self.score is None:
            return None
        return self.score / 5 if self.kind == "graded" else self.score


@dataclass
class Report:
    tasks: list[TaskRow]
    macro: float | None  # over every task with a score
    benchmarks_present: int  # of the 17 MediX-R1 benchmarks
    samples: int
    failed: int
    templates: list[str] = field(default_factory=list)  # the template-set ids the judged rows name
    judged_labelled: int = 0  # judge-scored samples with a label, all tasks
    judged_agree: int = 0

    @property
    def labelled(self) -> bool:
        return any(row.labelled for row in self.tasks)

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]]) -> Report:
        by_task: dict[str, list[EvaluateResult]] = {}
        for row in rows:
            result = EvaluateResult.model_validate(row)
            by_task.setdefault(result.task, []).append(result)
        tasks = []
        judged = [r for results in by_task.values() for r in results if r.method == "judge" and r.score is not None]
        labelled = [r for r in judged if r.label is not None]
        for task in sorted(by_task, key=lambda t: (t not in MEDIX_R1_TASKS, list(MEDIX_R1_TASKS).index(t)
                                                   if t in MEDIX_R1_TASKS else 0, t)):  # fmt: skip
            results = by_task[task]
            scores = [r.score for r in results if r.score is not None]
            kind = results[0].kind
            low = high = mean = None
            if scores:
                mean = statistics.fmean(scores)
                low, high = wilson(sum(scores), len(scores)) if kind == "binary" else mean_interval(scores)
            marked = [r for r in results if r.score is not None and r.label is not None]
            tasks.append(TaskRow(task, kind, len(scores), len(results) - len(scores), mean, low, high,
                                 sum(r.method == "rule" for r in results), len(marked),
                                 sum(map(agrees, marked))))  # fmt: skip
        values = [row.normalised for row in tasks if row.normalised is not None]
        return cls(
            tasks=tasks,
            macro=statistics.fmean(values) if values else None,
            benchmarks_present=sum(row.task in MEDIX_R1_TASKS and row.n > 0 for row in tasks),
            samples=sum(row.n + row.failed for row in tasks),
            failed=sum(row.failed for row in tasks),
            templates=sorted({r.templates for results in by_task.values() for r in results if r.templates}),
            judged_labelled=len(labelled),
            judged_agree=sum(map(agrees, labelled)),
        )

    def markdown(self, header: list[str] | None = None) -> str:
        """The table, under `header` (the run's judge, templates and calibration: `EvalRun.header`)."""
        extra = " agrees with label |" if self.labelled else ""
        lines = [*(header or []), "| task | kind | n | failed | by rule | score | 95% CI |" + extra,
                 "| --- | --- | ---: | ---: | ---: | ---: | --- |" + (" ---: |" if extra else "")]  # fmt: skip
        for row in self.tasks:
            agree = f" {row.agree}/{row.labelled} |" if extra else ""
            lines.append(
                f"| {row.task} | {row.kind} | {row.n} | {row.failed} | {row.by_rule} | {_value(row.kind, row.score)} "
                f"| {_interval(row)} |{agree}"
            )
        macro = "-" if self.macro is None else f"{100 * self.macro:.1f} %"
        scored = sum(row.n > 0 for row in self.tasks)
        total = f" {sum(r.agree for r in self.tasks)}/{sum(r.labelled for r in self.tasks)} |" if extra else ""
        lines.append(f"| **macro average** ({scored} tasks) | | {self.samples - self.failed} | {self.failed} | | "
                     f"**{macro}** | |{total}")  # fmt: skip
        lines.append("")
        lines.append(
            f"{self.benchmarks_present} of the 17 MediX-R1 benchmarks present; graded tasks (0-5) count as mean / 5 "
            "in the macro average."
        )
        if self.judged_labelled:
            lines.append(
                f"Scored by the judge and labelled: {self.judged_labelled} samples, {self.judged_agree} "
                f"({self.judged_agree / self.judged_labelled:.0%}) agree with their labels (graded: both 3 or more, "
                "or both below)."
            )
        if len(self.templates) > 1:
            lines.append(f"Rows graded by {len(self.templates)} template sets: {', '.join(self.templates)}.")
        return "\n".join(lines)

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["task", "kind", "n", "failed", "by_rule", "score", "ci_low", "ci_high", "normalised"])
            for row in self.tasks:
                writer.writerow([row.task, row.kind, row.n, row.failed, row.by_rule, row.score, row.ci_low,
                                 row.ci_high, row.normalised])  # fmt: skip
            writer.writerow(["macro", "", self.samples - self.failed, self.failed, "", "", "", "", self.macro])

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": [{**asdict(row), "normalised": row.normalised} for row in self.tasks],
            "macro": self.macro,
            "benchmarks_present": self.benchmarks_present,
            "samples": self.samples,
            "failed": self.failed,
            "templates": self.templates,
            "judged_labelled": self.judged_labelled,
            "judged_agree": self.judged_agree,
        }

    def plot(self, path: Path, title: str = "Evaluation") -> None:
        """A bar per task (accuracy, or mean score / 5, in %) with its 95% interval; needs matplotlib."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [row for row in self.tasks if row.normalised is not None]
        scale = [100 / 5 if row.kind == "graded" else 100 for row in rows]
        values = [row.score * s for row, s in zip(rows, scale, strict=True)]  # type: ignore[operator]
        lows = [v - row.ci_low * s for v, row, s in zip(values, rows, scale, strict=True)]  # type: ignore[operator]
        highs = [row.ci_high * s - v for v, row, s in zip(values, rows, scale, strict=True)]  # type: ignore[operator]
        figure, axes = plt.subplots(figsize=(max(6, 0.7 * len(rows) + 2), 4.5))
        colours = ["tab:orange" if row.kind == "graded" else "tab:blue" for row in rows]  # graded: orange
        axes.bar(range(len(rows)), values, color=colours, yerr=[lows, highs], capsize=3)
        if self.macro is not None:
            axes.axhline(100 * self.macro, color="grey", linestyle="--", label=f"macro {100 * self.macro:.1f} %")
            axes.legend(loc="upper right")
        axes.set_xticks(range(len(rows)), [f"{row.task}\n(n={row.n})" for row in rows], rotation=60, ha="right",
                        fontsize=7)  # fmt: skip
        axes.set_ylim(0, 105)
        axes.set_ylabel("accuracy, or mean score / 5 (%)", fontsize=8)
        axes.set_title(title)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)


def agrees(result: EvaluateResult) -> bool:
    """A scored sample scored as labelled: binary, the same 0/1 (majority); graded, both 3 or more or both below."""
    assert result.score is not None and result.label is not None
    if result.kind == "graded":
        return (result.score >= 3) == (result.label >= 3)
    return (result.score > 0.5) == (result.label > 0.5)


def _value(kind: str, score: float | None) -> str:
    if score is None:
        return "-"
    return f"{score:.2f} / 5" if kind == "graded" else f"{100 * score:.1f} %"


def _calibration_line(c: Calibration) -> str:
    flips = "not measured (the template fixes the reply order)" if c.order_flips is None else f"{c.order_flips:.0%}"
    verdict = "passed" if c.passed else ("FAILED, forced" if c.forced else "FAILED")
    return (
        f"{c.kind} agreement {c.agreement:.0%} on {c.items} items of known label (≥ {c.min_agreement:.0%} "
        f"needed), order flips {flips} (≤ {c.max_order_flips:.0%}), {c.unreadable} unreadable: {verdict}"
    )


def _interval(row: TaskRow) -> str:
    if row.ci_low is None or row.ci_high is None:
        return "-"
    if row.kind == "graded":
        return f"{row.ci_low:.2f} – {row.ci_high:.2f}"
    return f"{100 * row.ci_low:.1f} – {100 * row.ci_high:.1f} %"


@dataclass
class EvalRun:
    """What this run did (the report covers the whole output file)."""

    total: int = 0
    skipped: int = 0
    evaluated: int = 0
    failed: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # samples of chunks the service refused, by error
    judge_calls: int = 0
    judge_cache_hits: int = 0
    rule_decided: int = 0
    judge_calls_saved: int = 0
    calibration_calls: int = 0
    seconds: float = 0.0
    # What the service said it graded with (the last response's): judge, protocol, templates, calibration.
    judge_model: str | None = None
    protocol_version: str | None = None
    templates: dict[str, str] = field(default_factory=dict)
    templates_id: str | None = None
    calibration: dict[str, Calibration] = field(default_factory=dict)  # by kind
    uncalibrated: str | None = None  # the service refused: the judge failed calibration (its message)

    @property
    def forced(self) -> bool:
        return any(c.forced for c in self.calibration.values())

    def header(self) -> list[str]:
        """The lines above the table: what graded it, and how the judge did on calibration."""
        if self.judge_model is None:
            return ["Judge, templates and calibration: not known (no sample was sent to the service in this run).", ""]
        lines = []
        if self.forced:
            lines += [f"**FORCED: the judge failed calibration ({self._problems()}); these scores measure the judge "
                      "as much as the answers.**", ""]  # fmt: skip
        templates = "; ".join(f"{role} {text}" for role, text in self.templates.items())
        lines.append(f"Judge `{self.judge_model}`, protocol `{self.protocol_version}`, templates `{self.templates_id}` "
                     f"({templates}).")  # fmt: skip
        if self.calibration:
            lines.append("Calibration: " + "; ".join(_calibration_line(c) for c in self.calibration.values()) + ".")
        else:
            lines.append("Calibration: none this run (calibration off, or every sample scored by rule).")
        return [*lines, ""]

    def _problems(self) -> str:
        return "; ".join(c.problem or "" for c in self.calibration.values() if not c.passed)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["calibration"] = [c.model_dump(mode="json") for c in self.calibration.values()]
        return {**body, "forced": self.forced, "samples_per_s": self.samples_per_s}

    @property
    def samples_per_s(self) -> float:
        return self.evaluated / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        calls = self.judge_calls / self.evaluated if self.evaluated else 0.0
        refused = sum(self.refused.values())
        return (
            f"samples: {self.total} in file, {self.skipped} already done, {self.evaluated} evaluated now "
            f"({self.failed} failed, {refused} refused by the service) in {self.seconds:.1f} s = "
            f"{self.samples_per_s:.2f} samples/s; judge calls {self.judge_calls} ({calls:.2f} per sample, "
            f"{self.judge_cache_hits} cache hits); {self.rule_decided} scored by the multiple-choice rule, "
            f"{self.judge_calls_saved} judge calls saved"
        )


def done_lines(out_path: Path) -> set[int]:
    """Lines whose latest row has a score: a failed sample is asked again on the next run."""
    return {number for number, row in read_rows(out_path).items() if row.get("score") is not None}


async def evaluate_file(
    in_path: Path,
    out_path: Path,
    *,
    url: str | None = None,
    chunk_size: int = 32,
    max_concurrency: int = 4,
    options: EvaluateOptions | None = None,
    progress: TextIO | None = None,  # default: sys.stderr at call time
    client: AsyncRewardClient | None = None,
) -> EvalRun:
    run = EvalRun()
    run.total, run.skipped, todo = pending(in_path, done_lines(out_path), EvaluateItem.model_validate_json)
    service = client or AsyncRewardClient(url, timeout=3600.0)
    meter = Progress(run.total, run.skipped, unit="samples", stream=progress or sys.stderr)

    async def send(items: list[EvaluateItem]) -> list[EvaluateResult]:
        response = await service.evaluate(items, options)
        usage = response.usage
        run.judge_calls += usage.judge_calls
        run.judge_cache_hits += usage.judge_cache_hits
        run.rule_decided += usage.rule_decided
        run.judge_calls_saved += usage.judge_calls_saved
        run.calibration_calls += usage.calibration_calls
        run.judge_model, run.protocol_version = response.judge_model, response.protocol_version
        run.templates, run.templates_id = response.templates, response.templates_id
        run.calibration.update({c.kind: c for c in response.calibration})
        return response.results

    def add(result: EvaluateResult) -> None:
        run.evaluated += 1
        run.failed += result.error is not None

    def refused(chunk: list[tuple[int, EvaluateItem]], exc: RewardError) -> None:
        run.refused[type(exc).__name__] += len(chunk)
        if isinstance(exc, APIStatusError) and exc.status == 424:
            error = exc.body.get("error") if isinstance(exc.body, dict) else None
            run.uncalibrated = f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else str(exc)

    try:
        await run_chunks(
            todo, out_path, chunk_size=chunk_size, max_concurrency=max_concurrency, send=send,
            row=lambda result: result.model_dump(mode="json"), on_result=add, on_refused=refused, progress=meter,
        )  # fmt: skip
    finally:
        run.seconds = meter.elapsed
        if client is None:
            await service.aclose()
    return run


def report_of(out_path: Path) -> Report:
    return Report.from_rows(read_rows(out_path).values())


def write_outputs(report: Report, run: EvalRun, *, csv_path: str | None, json_path: str | None,
                  plot_path: str | None, title: str) -> None:  # fmt: skip
    if csv_path:
        report.write_csv(Path(csv_path))
    if json_path:
        body = {**report.to_json(), "run": run.to_json()}
        Path(json_path).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    if plot_path:
        report.plot(Path(plot_path), title)
