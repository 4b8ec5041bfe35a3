"""What the reward sees over time: per-preset counts of refusals, shortcuts and judge verdicts, the two model
signals disagreeing, rolling rates over a window with an alarm on the refusal rate, and GRPO groups gathered
across requests (groups.py). Registered on the app's one Prometheus registry (metrics.py) and summarised by
`GET /stats`.

The hot path stays cheap: `tally` is one pure pass over a request's results (on a worker thread for a large
request), and `record` adds that request's totals, a handful of counters, to the window and the counters.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from medix_reward.api.groups import Arrivals, GroupId, GroupTracker
from medix_reward.api.metrics import PREFIX
from medix_reward.settings import TelemetrySettings
from medix_reward_client.schema import GroupsSummary, ItemResult, PresetRates, RewardItem, StatsResponse

log = logging.getLogger(__name__)

# Keys of the rolling window's counts; refusals by rule are "rule:" + the rule.
ITEMS, JUDGED, YES, DISAGREE, REFUSED = "items", "judged", "yes", "disagree", "refused"
_RULE = "rule:"
WINDOW_SLOTS = 30


@dataclass
class Tally:
    """One request's reward events, counted in one pass over its results."""

    preset: str
    items: int = 0
    refusals: Counter[str] = field(default_factory=Counter)  # rule -> items
    shortcuts: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)  # YES / NO, the judge's first verdict
    disagreements: int = 0  # judge YES with a similarity below the level
    groups: dict[GroupId, Arrivals] = field(default_factory=dict)

    def window_counts(self) -> Counter[str]:
        counts = Counter({ITEMS: self.items, JUDGED: self.verdicts.total(), YES: self.verdicts["YES"]})
        counts.update({DISAGREE: self.disagreements, REFUSED: self.refusals.total()})
        counts.update({_RULE + rule: n for rule, n in self.refusals.items()})
        return counts


def tally(items: Sequence[RewardItem], results: Sequence[ItemResult], preset: str, disagree_below: float) -> Tally:
    counted = Tally(preset, items=len(results))
    for item, result in zip(items, results, strict=True):
        details = result.details
        if details.rejection is not None:
            counted.refusals[details.rejection] += 1
        if details.shortcut is not None:
            counted.shortcuts[details.shortcut] += 1
        if details.judge_verdict is not None:
            counted.verdicts[details.judge_verdict] += 1
            if details.judge_verdict == "YES" and details.cosine is not None and details.cosine < disagree_below:
                counted.disagreements += 1
        if result.group_id is not None:
            arrivals = counted.groups.get(result.group_id)
            if arrivals is None:
                arrivals = counted.groups[result.group_id] = Arrivals(size=item.group_size)
            arrivals.overalls.append(result.overall)
    for arrivals in counted.groups.values():
        _ = arrivals.running  # summed here, on the caller's thread, so that `record` merges per group
    return counted


class RollingCounts:
    """Event counts over the last `window_s`, kept in `slots` time slots with running totals: adding is O(keys
    added), and a slot's counts leave the totals when its time comes round again. The window read is therefore
    between window_s − window_s/slots and window_s long."""

    def __init__(self, window_s: float, slots: int = WINDOW_SLOTS) -> None:
        self.slot_s = window_s / slots
        self.slots: list[Counter[str]] = [Counter() for _ in range(slots)]
        self.current: int | None = None
        self.totals: Counter[str] = Counter()

    def _advance(self, now: float) -> None:
        index = int(now // self.slot_s)
        if self.current is None:
            self.current = index
            return
        for step in range(1, min(index - self.current, len(self.slots)) + 1):
            slot = self.slots[(self.current + step) % len(self.slots)]
            self.totals.subtract(slot)
            slot.clear()
        self.current = max(self.current, index)

    def add(self, counts: Counter[str], now: float) -> None:
        self._advance(now)
        assert self.current is not None
        self.slots[self.current % len(self.slots)].update(counts)
        self.totals.update(counts)

    def read(self, now: float) -> Counter[str]:
        self._advance(now)
        return +self.totals  # without the zeros


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class RewardTelemetry:
    def __init__(
        self, settings: TelemetrySettings, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        r = registry
        self.items = PromCounter(f"{PREFIX}_preset_items", "Items scored, by preset", ["preset"], registry=r)
        self.refusals = PromCounter(
            f"{PREFIX}_refusals",
            "Items refused accuracy credit (details.rejection), by preset and rule",
            ["preset", "rule"],
            registry=r,
        )
        self.shortcuts = PromCounter(
            f"{PREFIX}_shortcuts", "Items decided without a model, by preset and shortcut", ["preset", "shortcut"],
            registry=r,
        )  # fmt: skip
        self.verdicts = PromCounter(
            f"{PREFIX}_judge_verdicts", "The judge's first verdict per judged item", ["preset", "verdict"], registry=r
        )
        self.disagreements = PromCounter(
            f"{PREFIX}_signal_disagreements",
            "Judge YES with an embedding similarity below telemetry.disagree_below (default: embed_threshold)",
            ["preset"],
            registry=r,
        )
        self.alarms = PromCounter(
            f"{PREFIX}_refusal_alarms", "Times a preset's rolling refusal ratio rose above the level", ["preset"],
            registry=r,
        )  # fmt: skip
        self.windows: dict[str, RollingCounts] = {}
        self.alarm: dict[str, bool] = {}
        self.groups = GroupTracker(
            settings.group_window_s, settings.max_open_groups, default_size=settings.group_size,
            recent=settings.recent_groups,
        )  # fmt: skip
        registry.register(_RollingCollector(self))

    def disagree_below(self, embed_threshold: float) -> float:
        level = self.settings.disagree_below
        return embed_threshold if level is None else level

    def record(self, counted: Tally) -> None:
        """Add one request's tally: counters, the preset's window, its alarm, and the groups. On the event loop."""
        now, preset = self.clock(), counted.preset
        self.items.labels(preset).inc(counted.items)
        for rule, n in counted.refusals.items():
            self.refusals.labels(preset, rule).inc(n)
        for shortcut, n in counted.shortcuts.items():
            self.shortcuts.labels(preset, shortcut).inc(n)
        for verdict, n in counted.verdicts.items():
            self.verdicts.labels(preset, verdict).inc(n)
        if counted.disagreements:
            self.disagreements.labels(preset).inc(counted.disagreements)
        window = self.windows.get(preset)
        if window is None:
            window = self.windows[preset] = RollingCounts(self.settings.window_s)
        window.add(counted.window_counts(), now)
        self._check_alarm(preset, window.read(now))
        self.groups.add(counted.groups.items(), now)

    def rates(self) -> dict[str, PresetRates]:
        now = self.clock()
        rates = {}
        for preset, window in self.windows.items():
            counts = window.read(now)
            self._check_alarm(preset, counts)
            rates[preset] = PresetRates(
                items=counts[ITEMS],
                refusal_ratio=_ratio(counts[REFUSED], counts[ITEMS]),
                refusals={key.removeprefix(_RULE): n for key, n in counts.items() if key.startswith(_RULE)},
                judge_yes_ratio=_ratio(counts[YES], counts[JUDGED]),
                disagreement_ratio=_ratio(counts[DISAGREE], counts[YES]),
                alarm=self.alarm.get(preset, False),
            )
        return rates

    def stats(self) -> StatsResponse:
        self.groups.expire(self.clock())
        tracker = self.groups
        closed = sum(tracker.closed.values())
        groups = GroupsSummary(
            open=tracker.open_count, closed=dict(tracker.closed), degenerate=tracker.degenerate,
            degenerate_share=_ratio(tracker.degenerate, closed), recent=tracker.recent,
        )  # fmt: skip
        return StatsResponse(window_s=self.settings.window_s, presets=self.rates(), groups=groups)

    def _check_alarm(self, preset: str, counts: Counter[str]) -> None:
        """The alarm is on while the window holds enough items and the refused share is above the level; a log
        warning when it goes on, a line when it goes off."""
        level, items = self.settings.refusal_alert_ratio, counts[ITEMS]
        ratio = counts[REFUSED] / items if items >= self.settings.min_items else 0.0
        on, was = ratio > level, self.alarm.get(preset, False)
        if on and not was:
            self.alarms.labels(preset).inc()
            rules = {key.removeprefix(_RULE): n for key, n in counts.most_common() if key.startswith(_RULE)}
            fields = {"preset": preset, "refusal_ratio": round(ratio, 4), "level": level, "items": items,
                      "window_s": self.settings.window_s, "refusals": rules}  # fmt: skip
            log.warning(
                "refusal rate %.2f above %.2f for preset %s: the policy may be probing the judge",
                ratio, level, preset, extra={"fields": fields},
            )  # fmt: skip
        elif was and not on:
            log.info("refusal rate back under %.2f for preset %s", level, preset, extra={"fields": {"preset": preset}})
        self.alarm[preset] = on


class _RollingCollector(Collector):
    """The window's ratios and the alarm, computed at scrape time (so they decay when traffic stops)."""

    def __init__(self, telemetry: RewardTelemetry) -> None:
        self.telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        t = self.telemetry
        rates = t.rates()
        t.groups.expire(t.clock())
        level = GaugeMetricFamily(
            f"{PREFIX}_refusal_alert_ratio", "The configured refusal ratio that raises the alarm (the alert rule's)"
        )
        level.add_metric([], t.settings.refusal_alert_ratio)
        yield level
        families = {
            "refusal_ratio": "Share of a preset's items refused, over the rolling window",
            "judge_yes_ratio": "Share of a preset's judged items whose first verdict was YES, over the window",
            "disagreement_ratio": "Share of a preset's judge YES with low embedding similarity, over the window",
        }
        names = {"disagreement_ratio": "signal_disagreement_ratio"}
        for key, doc in families.items():
            family = GaugeMetricFamily(f"{PREFIX}_{names.get(key, key)}", doc, labels=["preset"])
            for preset, r in rates.items():
                value = getattr(r, key)
                if value is not None:
                    family.add_metric([preset], value)
            yield family
        by_rule = GaugeMetricFamily(
            f"{PREFIX}_refusal_rule_ratio", "Share of a preset's items refused by each rule, over the window",
            labels=["preset", "rule"],
        )  # fmt: skip
        alarm = GaugeMetricFamily(
            f"{PREFIX}_refusal_alarm", "1 while the refusal ratio is above the level", labels=["preset"]
        )
        window_items = GaugeMetricFamily(
            f"{PREFIX}_window_items", "A preset's items in the rolling window", labels=["preset"]
        )
        for preset, r in rates.items():
            for rule, n in r.refusals.items():
                by_rule.add_metric([preset, rule], n / r.items if r.items else 0.0)
            alarm.add_metric([preset], float(r.alarm))
            window_items.add_metric([preset], r.items)
        yield by_rule
        yield alarm
        yield window_items
        open_groups = GaugeMetricFamily(f"{PREFIX}_groups_open", "Groups gathering members across requests now")
        open_groups.add_metric([], t.groups.open_count)
        yield open_groups
        closed = CounterMetricFamily(
            f"{PREFIX}_groups_closed", "Groups gathered across requests and closed, by reason", labels=["reason"]
        )
        for reason, n in t.groups.closed.items():
            closed.add_metric([reason], n)
        yield closed
        degenerate = CounterMetricFamily(
            f"{PREFIX}_groups_degenerate", "Closed groups whose scored members all got the same overall"
        )
        degenerate.add_metric([], t.groups.degenerate)
        yield degenerate
