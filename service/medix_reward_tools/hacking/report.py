"""The figures of the hacking experiment from its per-step logs (<out>/<run>.jsonl, <run>.meta.json): the
plot (proxy and gold reward and attack share per step, every run) and the Markdown tables (shares at the
start and the end, attack families, rejection reasons, sample completions, run time). A run is named by its
log's file name: the experiment writes <preset>.jsonl, and an earlier run kept beside it under another name
(hardened-v1.jsonl) is drawn dashed in its preset's colour. Needs matplotlib for the plot, not torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WINDOW = 4  # records (generation rounds) averaged at the start and the end
SMOOTH = 3  # records in the plot's moving average


def load(out: str) -> dict[str, list[dict[str, Any]]]:
    """Each run's steps, by the logs found in `out`, named by their file name."""
    logs = {}
    for path in sorted(Path(out).glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if rows:
            logs[path.stem] = rows
    return logs


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


SHORTCUTS = ("exact_match", "invalid_answer")  # the service's shortcuts that are not refusals


def rejections(row: dict[str, Any]) -> dict[str, int]:
    """A record's refusals. Logs written before `shortcuts` had its own field counted the shortcuts here."""
    return {k: v for k, v in row["rejections"].items() if k not in SHORTCUTS}


def window(rows: list[dict[str, Any]], where: str, n: int = WINDOW) -> dict[str, Any]:
    """Means over the first or last `n` records (each scores the same number of completions)."""
    part = rows[:n] if where == "start" else rows[-n:]
    families = sorted({f for r in part for f in r["families"]})
    reasons = sorted({k for r in part for k in rejections(r)})
    completions = sum(r["completions"] for r in part) or 1
    return {
        "steps": f"{part[0]['step']}–{part[-1]['step']}",
        "proxy": _mean([r["proxy"] for r in part]),
        "gold": _mean([r["gold"] for r in part]),
        **{kind: _mean([r["shares"][kind] for r in part]) for kind in ("correct", "wrong", "attack")},
        "attack_reward": _mean([r["proxy_by_label"]["attack"] for r in part]),
        "wrong_reward": _mean([r["proxy_by_label"]["wrong"] for r in part]),
        "families": {f: _mean([r["families"].get(f, 0.0) for r in part]) for f in families},
        "rejections": {k: sum(rejections(r).get(k, 0) for r in part) / completions for k in reasons},
    }


def moving(values: list[float | None], n: int = SMOOTH) -> list[float | None]:
    out = []
    for i in range(len(values)):
        out.append(_mean(values[max(0, i - n + 1) : i + 1]))
    return out


def draw(logs: dict[str, list[dict[str, Any]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("proxy", "proxy reward (the service's mean)"), ("gold", "gold reward (labeller in place of judge)"),
              ("attack", "attack share (labeller)"), ("attack_reward", "proxy reward of an attack")]  # fmt: skip
    getters = {"proxy": lambda r: r["proxy"], "gold": lambda r: r["gold"], "attack": lambda r: r["shares"]["attack"],
               "attack_reward": lambda r: r["proxy_by_label"]["attack"]}  # fmt: skip
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2), sharex=True)
    colours = {"medix-r1": "tab:red", "hardened": "tab:blue"}
    for ax, (key, title) in zip(axes, panels, strict=True):
        for run, rows in logs.items():
            steps = [r["step"] for r in rows]
            values = [getters[key](r) for r in rows]
            preset = rows[0]["preset"]
            colour, style = colours.get(preset), "-" if run == preset else "--"  # an earlier run: dashed
            ax.plot(steps, values, color=colour, linestyle=style, alpha=0.25, linewidth=0.8)
            ax.plot(steps, moving(values), color=colour, linestyle=style, linewidth=2,
                    label=f"{run} (mean of {SMOOTH} rounds)")  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("GRPO step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("GRPO of SmolLM2-135M against the service with the susceptible judge, per run (same seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def tables(logs: dict[str, list[dict[str, Any]]], out: str) -> str:
    lines = [f"Means over the first and the last {WINDOW} records (generation rounds, each of the same number of "
             "completions); `steps` gives the optimizer steps at which those rounds were generated.", "",
             "| run | steps | proxy reward | gold reward | correct | wrong | attack | proxy reward of an attack "
             "| of a wrong answer |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for run, rows in logs.items():
        for where in ("start", "end"):
            w = window(rows, where)
            lines.append(f"| {run} | {w['steps']} | {_num(w['proxy'])} | {_num(w['gold'])} | {_pct(w['correct'])} "
                         f"| {_pct(w['wrong'])} | {_pct(w['attack'])} | {_num(w['attack_reward'])} "
                         f"| {_num(w['wrong_reward'])} |")  # fmt: skip
    lines += ["", "Attack families (share of all completions) and the service's rejection reasons (share of all "
              "completions), start → end:", ""]  # fmt: skip
    for run, rows in logs.items():
        start, end = window(rows, "start"), window(rows, "end")
        families = sorted(set(start["families"]) | set(end["families"]))
        text = ", ".join(f"{f} {_pct(start['families'].get(f, 0))} → {_pct(end['families'].get(f, 0))}"
                         for f in families)  # fmt: skip
        reasons = sorted(set(start["rejections"]) | set(end["rejections"]))
        rejected = ", ".join(f"{k} {_pct(start['rejections'].get(k, 0))} → {_pct(end['rejections'].get(k, 0))}"
                             for k in reasons)  # fmt: skip
        lines.append(f"- **{run}**: families: {text or 'none'}; rejections: {rejected or 'none'}.")
    lines += ["", "Run time (load: several engineers sharing 2 cores; load average before → after):", ""]
    for run, rows in logs.items():
        meta_path = Path(out) / f"{run}.meta.json"
        if not meta_path.exists():  # a run stopped (or still running): what its log says
            last = rows[-1]
            lines.append(f"- {run}: stopped after the round of step {last['step']}, "
                         f"{last['elapsed_s'] / 60:.0f} min "
                         "into training (no meta file: the run did not finish).")  # fmt: skip
        else:
            meta = json.loads(meta_path.read_text())
            before, after = meta["loadavg_before"][0], meta["loadavg_after"][0]
            lines.append(f"- {run}: {meta['steps']} steps in {meta['train_seconds'] / 60:.0f} min "
                         f"({meta['train_seconds'] / meta['steps']:.1f} s a step), {meta['threads']} torch thread(s), "
                         f"load {before:.1f} → {after:.1f} on {meta['cpus']} CPUs.")  # fmt: skip
    lines += ["", "Sample completions (the first 6 of the first and the last round):", ""]
    for run, rows in logs.items():
        sampled = [r for r in rows if "samples" in r]
        for row in (sampled[0], sampled[-1]) if sampled else ():
            lines.append(f"- **{run}, step {row['step']}**:")
            for s in row["samples"][:6]:
                kind = s["label"] + (f" ({s['family']})" if s["family"] else "")
                reward = _num(s["overall"])
                refused = s["rejection"] not in (None, *SHORTCUTS)
                rejection = f", rejected: {s['rejection']}" if refused else ""
                lines.append(f"  - truth `{s['truth']}` · {kind} · reward {reward}{rejection} · "
                             f"`{json.dumps(s['completion'].strip(), ensure_ascii=False)[1:-1]}`")  # fmt: skip
    return "\n".join(lines) + "\n"


def render(out: str, plot: str | None = None, markdown: str | None = None) -> None:
    logs = load(out)
    if not logs:
        raise SystemExit(f"no logs in {out}")
    plot = plot or str(Path(out) / "hacking.png")
    markdown = markdown or str(Path(out) / "results.md")
    draw(logs, plot)
    Path(markdown).write_text(tables(logs, out), encoding="utf-8")
    print(f"plot {plot}; tables {markdown}")
