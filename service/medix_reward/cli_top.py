"""`medix-reward top`: a live terminal view of a running service, read from its `/metrics` every few seconds.

Rates (items/s, latency) are over the last refresh; the ratios per preset are the service's own rolling window
(telemetry.window_s); the rest are totals since the service started. The numbers are computed by `summarise`
(pure, from two scrapes), and drawn by `render` (rich).
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

Labels = tuple[tuple[str, str], ...]
SCORING_ROUTES = ("/reward", "/openrlhf/get_reward", "/slime/reward")


@dataclass(frozen=True)
class Scrape:
    at: float
    values: dict[tuple[str, Labels], float]

    @classmethod
    def parse(cls, text: str, at: float) -> Scrape:
        values = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        return cls(at, values)

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(labels), value) for (n, labels), value in self.values.items() if n == name]

    def total(self, name: str, **match: str) -> float:
        return sum(v for labels, v in self.series(name) if all(labels.get(k) == w for k, w in match.items()))


@dataclass
class PresetRow:
    items: int = 0
    refusal_ratio: float | None = None
    judge_yes_ratio: float | None = None
    disagreement_ratio: float | None = None
    alarm: bool = False


@dataclass
class View:
    """What `top` shows: every number computed, nothing drawn."""

    items_per_s: float | None
    latency_mean_s: float | None
    latency_p95_s: float | None
    items_total: int
    presets: dict[str, PresetRow] = field(default_factory=dict)
    refusals: list[tuple[str, str, int, float | None]] = field(default_factory=list)  # preset, rule, total, window
    component_means: dict[str, float | None] = field(default_factory=dict)
    groups_open: int = 0
    groups_closed: int = 0
    degenerate_share: float | None = None
    unscored: list[tuple[str, str, int]] = field(default_factory=list)  # component, code, total


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """histogram_quantile over cumulative (upper bound, count) buckets, as Prometheus interpolates it."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-12)
        lower_bound, lower_count = bound, count
    return None


def summarise(before: Scrape | None, now: Scrape) -> View:
    """The view from the latest scrape, with rates over the time since `before` (None: no rates yet)."""
    items_total = now.total("medix_reward_items_scored_total")
    items_per_s = latency_mean = latency_p95 = None
    if before is not None and now.at > before.at:
        items_per_s = (items_total - before.total("medix_reward_items_scored_total")) / (now.at - before.at)

        def delta(name: str, **match: str) -> float:
            return sum(now.total(name, route=r, **match) - before.total(name, route=r, **match) for r in SCORING_ROUTES)

        count = delta("medix_reward_request_duration_seconds_count")
        if count > 0:
            latency_mean = delta("medix_reward_request_duration_seconds_sum") / count
            bounds = {labels["le"] for labels, _ in now.series("medix_reward_request_duration_seconds_bucket")}
            buckets = [(float(le), delta("medix_reward_request_duration_seconds_bucket", le=le)) for le in bounds]
            latency_p95 = _quantile(0.95, buckets)
    view = View(items_per_s, latency_mean, latency_p95, int(items_total))
    rows: dict[str, PresetRow] = defaultdict(PresetRow)
    gauges = {"medix_reward_refusal_ratio": "refusal_ratio", "medix_reward_judge_yes_ratio": "judge_yes_ratio",
              "medix_reward_signal_disagreement_ratio": "disagreement_ratio"}  # fmt: skip
    for name, attribute in gauges.items():
        for labels, value in now.series(name):
            setattr(rows[labels["preset"]], attribute, value)
    for labels, value in now.series("medix_reward_window_items"):
        rows[labels["preset"]].items = int(value)
    for labels, value in now.series("medix_reward_refusal_alarm"):
        rows[labels["preset"]].alarm = value >= 1
    view.presets = dict(sorted(rows.items()))
    window = {(lab["preset"], lab["rule"]): v for lab, v in now.series("medix_reward_refusal_rule_ratio")}
    view.refusals = sorted(
        ((lab["preset"], lab["rule"], int(v), window.get((lab["preset"], lab["rule"])))
         for lab, v in now.series("medix_reward_refusals_total")),
        key=lambda row: -row[2],
    )  # fmt: skip
    for labels, total in now.series("medix_reward_component_score_sum"):
        count = now.total("medix_reward_component_score_count", component=labels["component"])
        view.component_means[labels["component"]] = total / count if count else None
    view.groups_open = int(now.total("medix_reward_groups_open"))
    view.groups_closed = int(now.total("medix_reward_groups_closed_total"))
    degenerate = now.total("medix_reward_groups_degenerate_total")
    view.degenerate_share = degenerate / view.groups_closed if view.groups_closed else None
    view.unscored = sorted(
        ((lab["component"], lab["code"], int(v)) for lab, v in now.series("medix_reward_unscored_components_total")),
        key=lambda row: -row[2],
    )
    return view


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def render(view: View, url: str, error: str | None = None) -> RenderableType:
    head = Text.assemble(
        ("medix-reward top ", "bold"), (url, "cyan"), "   ",
        ("items/s ", "dim"), ("—" if view.items_per_s is None else f"{view.items_per_s:.1f}", "bold"), "   ",
        ("latency mean ", "dim"), _seconds(view.latency_mean_s), ("  p95 ", "dim"), _seconds(view.latency_p95_s),
        "   ", ("items ", "dim"), str(view.items_total),
    )  # fmt: skip
    parts: list[RenderableType] = [head]
    if error is not None:
        parts.append(Text(f"cannot read {url}/metrics: {error}", style="bold red"))
    presets = Table(title="per preset, rolling window", title_justify="left", expand=False)
    for column in ("preset", "items", "refused", "judge YES", "YES, embedder disagrees", "alarm"):
        presets.add_column(column, justify="left" if column == "preset" else "right")
    for name, row in view.presets.items():
        alarm = Text("REFUSALS HIGH", style="bold white on red") if row.alarm else Text("ok", style="green")
        presets.add_row(name, str(row.items), _share(row.refusal_ratio), _share(row.judge_yes_ratio),
                        _share(row.disagreement_ratio), alarm)  # fmt: skip
    parts.append(presets)
    refusals = Table(title="refusals by rule", title_justify="left")
    for column in ("preset", "rule", "total", "window share"):
        refusals.add_column(column, justify="left" if column in ("preset", "rule") else "right")
    for preset, rule, total, share in view.refusals[:12]:
        refusals.add_row(preset, rule, str(total), _share(share))
    components = Table(title="component means", title_justify="left")
    for column in ("component", "mean"):
        components.add_column(column, justify="left" if column == "component" else "right")
    for name, mean in view.component_means.items():
        components.add_row(name, "—" if mean is None else f"{mean:.3f}")
    groups = Table(title="groups across requests", title_justify="left")
    groups.add_column("open", justify="right")
    groups.add_column("closed", justify="right")
    groups.add_column("degenerate", justify="right")
    groups.add_row(str(view.groups_open), str(view.groups_closed), _share(view.degenerate_share))
    unscored = Table(title="unscored by reason", title_justify="left")
    for column in ("component", "reason", "total"):
        unscored.add_column(column, justify="right" if column == "total" else "left")
    for component, code, total in view.unscored[:8]:
        unscored.add_row(component, code, str(total))
    grid = Table.grid(padding=(0, 3))
    grid.add_row(refusals, Group(components, groups, unscored))
    parts.append(grid)
    parts.append(Text("rates over the last refresh; shares per preset over the service's window; Ctrl-C quits",
                      style="dim"))  # fmt: skip
    return Group(*parts)


def run(url: str | None = None, interval_s: float = 2.0, once: bool = False) -> None:
    url = (url or os.environ.get("MEDIX_REWARD_URL") or "http://127.0.0.1:8080").rstrip("/")
    before: Scrape | None = None
    with httpx.Client(timeout=max(interval_s, 2.0)) as client:

        def frame() -> RenderableType:
            nonlocal before
            try:
                now = Scrape.parse(client.get(f"{url}/metrics").raise_for_status().text, time.monotonic())
            except httpx.HTTPError as exc:
                return render(summarise(None, before or Scrape(0.0, {})), url, type(exc).__name__)
            view = summarise(before, now)
            before = now
            return render(view, url)

        if once:
            from rich.console import Console

            frame()
            time.sleep(interval_s)
            Console().print(frame())
            return
        with Live(frame(), auto_refresh=False, screen=False) as live:
            try:
                while True:
                    time.sleep(interval_s)
                    live.update(frame(), refresh=True)
            except KeyboardInterrupt:
                pass
