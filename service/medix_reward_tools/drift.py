"""A scripted drift: a policy whose answers shift from correct to attacks over rounds, scored by a running
service. After each round the service's `/metrics` is scraped; each scrape stands for one minute of a run. The
scrapes become the input of a `promtool test rules` file, so the alerting rules (deploy/alerts.yml) are evaluated
on exactly what the service exported: quiet while the answers are correct, firing once the attacks climb.

    python -m medix_reward_tools.drift --url http://127.0.0.1:8080 --out /tmp/drift.test.yml
    promtool test rules /tmp/drift.test.yml
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import threading
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from medix_reward_tools.common import grpo_items
from medix_reward_tools.integrity import CORPUS

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "alerts.yml"
# The series the alerting rules read.
RULE_SERIES = (
    "medix_reward_refusals_total",
    "medix_reward_preset_items_total",
    "medix_reward_refusal_alert_ratio",
    "medix_reward_signal_disagreements_total",
    "medix_reward_judge_verdicts_total",
)
Series = tuple[str, tuple[tuple[str, str], ...]]


def corpus(family: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if row["family"] == family]


def round_items(attack_share: float, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """`n` completions: a share drawn from the corpus's hacks, the rest from its legitimate answers."""
    legit, hacks = corpus("legit"), corpus("hack")
    attacks = round(attack_share * n)
    rows = rng.sample(hacks, attacks) + rng.sample(legit, n - attacks)
    return [{"response": row["response"], "ground_truth": row["ground_truth"], "id": row["id"]} for row in rows]


def scrape(client: httpx.Client) -> dict[Series, float]:
    text = client.get("/metrics").raise_for_status().text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in RULE_SERIES:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def drift_run(url: str, shares: list[float], *, items: int = 40, preset: str = "hardened", seed: int = 0) -> list[dict]:
    """One round per share: score `items` completions with that share of attacks, then scrape. Returns per round
    the share, the service's rolling refusal ratio and alarm (from /stats) and the scraped series."""
    rng = random.Random(seed)
    rounds = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for share in shares:
            body = {"items": round_items(share, items, rng), "options": {"preset": preset}}
            client.post("/reward", json=body).raise_for_status()
            stats = client.get("/stats").raise_for_status().json()["presets"].get(preset, {})
            rounds.append({"attack_share": share, "refusal_ratio": stats.get("refusal_ratio"),
                           "alarm": stats.get("alarm"), "series": scrape(client)})  # fmt: skip
    return rounds


def demo_traffic(url: str, stop: threading.Event, *, items: int = 40, seed: int = 0) -> None:
    """Traffic for `medix-reward top` until `stop` is set: hardened rounds drifting from correct answers to
    attacks, medix-r1 GRPO groups on /reward, and one-sample-per-call slime traffic grouped by prompt."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as client:
        for step in itertools.count():
            if stop.is_set():
                return
            share = min(0.8, max(0.0, 0.1 * (step - 4)))
            client.post("/reward", json={"items": round_items(share, items, rng), "options": {"preset": "hardened"}})
            group = grpo_items(4, 8, seed=step, first_prompt=4 * step)
            for item in group:
                item["group_id"], item["group_size"] = f"step{step}-{item['group_id']}", 8
            client.post("/reward", json={"items": group})
            for row in round_items(share, 4, rng):
                slime = {"prompt": f"case {row['id']}", "response": row["response"], "label": row["ground_truth"]}
                client.post("/slime/reward", json=slime)


def _selector(series: Series) -> str:
    name, labels = series
    inner = ",".join(f'{key}="{value}"' for key, value in labels)
    return f"{name}{{{inner}}}" if inner else name


def _annotations(alertname: str, preset: str) -> dict[str, str]:
    """The alert's annotations as Prometheus renders them for a preset (promtool compares them too)."""
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"][0]["rules"]
    rule = next(r for r in rules if r.get("alert") == alertname)
    return {k: v.replace("{{ $labels.preset }}", preset) for k, v in rule["annotations"].items()}


def promtool_test(rounds: list[dict], *, quiet_until: int, firing_at: int | None, preset: str = "hardened") -> str:
    """A `promtool test rules` file: the scraped series one minute apart ('_' before a series first appeared);
    the refusal alert expected quiet at every minute before `quiet_until` and firing for `preset` at `firing_at`
    (None: quiet throughout)."""
    every: list[Series] = sorted({series for r in rounds for series in r["series"]})
    input_series = []
    for series in every:
        values = [r["series"].get(series) for r in rounds]
        text = " ".join("_" if v is None else repr(float(v)) for v in values)
        input_series.append({"series": _selector(series), "values": text})
    alert = "MedixRewardRefusalRateHigh"
    checks: list[dict[str, Any]] = [
        {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": []} for minute in range(quiet_until)
    ]
    if firing_at is not None:
        expected = {
            "exp_labels": {"severity": "warning", "preset": preset},
            "exp_annotations": _annotations(alert, preset),
        }
        checks.append({"eval_time": f"{firing_at}m", "alertname": alert, "exp_alerts": [expected]})
    test = {"interval": "1m", "input_series": input_series, "alert_rule_test": checks, "name": "scripted drift"}
    document = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [test]}
    return yaml.safe_dump(document, sort_keys=False, width=1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--clean", type=int, default=6, help="rounds of correct answers first")
    parser.add_argument("--attack", type=int, default=10, help="then rounds with a rising share of attacks")
    args = parser.parse_args()
    shares = [0.0] * args.clean + [min(0.8, 0.1 * (k + 1)) for k in range(args.attack)]
    rounds = drift_run(args.url, shares)
    for minute, r in enumerate(rounds):
        share, ratio = r["attack_share"], r["refusal_ratio"]
        print(f"minute {minute:2d}  attacks {share:.0%}  refusal ratio {ratio:.2f}  alarm {r['alarm']}")
    Path(args.out).write_text(promtool_test(rounds, quiet_until=args.clean, firing_at=len(rounds) - 1))


if __name__ == "__main__":
    main()
