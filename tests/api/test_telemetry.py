"""What the reward sees over time: the rolling window, groups across requests, the refusal alarm, the
Prometheus series and the alerting rules (promtool), on the real app over loopback where users have it."""

from __future__ import annotations

import gc
import itertools
import logging
import math
import random
import shutil
import statistics
import subprocess
import tracemalloc
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from medix_reward_tools.common import grpo_items
from medix_reward_tools.drift import drift_run, promtool_test
from medix_reward_tools.scripted_judge import gullible
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from medix_reward.api.groups import Arrivals, GroupTracker
from medix_reward.api.protocols import OpenRLHFRequest, prompt_group_id
from medix_reward.api.telemetry import RewardTelemetry, RollingCounts, Tally
from medix_reward.settings import TelemetrySettings
from medix_reward_client.groups import group_stats
from medix_reward_client.schema import ItemResult
from tests.helpers import make_settings

ROOT = Path(__file__).resolve().parents[2]
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus)")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# -- the rolling window ------------------------------------------------------------------------------------


def test_rolling_counts_forget_what_left_the_window():
    window = RollingCounts(window_s=60, slots=6)
    window.add(Counter(items=10, refused=4), now=0)
    window.add(Counter(items=10), now=30)
    assert window.read(now=55) == Counter(items=20, refused=4)
    assert window.read(now=65) == Counter(items=10)  # the first slot came round again
    assert window.read(now=1000) == Counter()  # long idle: all forgotten, in at most `slots` steps


# -- groups across requests --------------------------------------------------------------------------------


def arrivals(values: list[float | None], size: int | None = None) -> Arrivals:
    return Arrivals(size=size, overalls=values)


def test_a_group_closes_at_its_declared_size_with_the_statistics_of_one_request():
    values = [0.1, 0.9, None, 0.9, 0.55, 0.1]
    tracker = GroupTracker(window_s=60, max_open=10)
    for i, value in enumerate(values):  # one member per request
        tracker.add([("g", arrivals([value], size=len(values)))], now=float(i))
        assert tracker.open_count == (0 if i == len(values) - 1 else 1)
    (closed,) = tracker.recent
    results = [ItemResult.model_validate(_result("g", v)) for v in values]
    (batched,) = group_stats(results)
    assert closed.reason == "size"
    assert (
        (closed.size, closed.scored, closed.uniform) == (batched.size, batched.scored, batched.uniform) == (6, 5, False)
    )
    assert closed.mean == pytest.approx(batched.mean) and closed.std == pytest.approx(batched.std)


def test_any_split_of_a_group_over_requests_gives_its_statistics():
    """However a group's members are split over requests (summed per request, then merged), the closed group has
    the statistics `group_stats` gives for all of them in one request; members past the declared size open the
    next group."""
    rng = random.Random(0)
    values = [rng.choice([None, 0.0, 0.1, 0.55, 0.9, 1.0]) for _ in range(12)]
    (batched,) = group_stats([ItemResult.model_validate(_result("g", v)) for v in values])
    for _ in range(30):
        cuts = sorted(rng.sample(range(1, 12), rng.randint(0, 6)))
        tracker = GroupTracker(window_s=60, max_open=10)
        for start, end in itertools.pairwise([0, *cuts, 12]):
            tracker.add([("g", arrivals(values[start:end], size=12))], now=0)
        (closed,) = tracker.recent
        assert (closed.size, closed.scored, closed.uniform) == (batched.size, batched.scored, batched.uniform)
        assert closed.mean == pytest.approx(batched.mean) and closed.std == pytest.approx(batched.std)
    tracker = GroupTracker(window_s=60, max_open=10)
    tracker.add([("g", arrivals([0.2, 0.4], size=3))], now=0)
    tracker.add([("g", arrivals([0.6, 1.0, 1.0], size=3))], now=1)  # one completes the group, two open the next
    assert [(g.size, g.mean) for g in tracker.recent] == [(3, pytest.approx(0.4))]
    assert tracker.open_count == 1


def test_groups_close_when_their_window_ends_and_the_oldest_is_evicted_past_the_bound():
    tracker = GroupTracker(window_s=10, max_open=2)
    tracker.add([("a", arrivals([1.0, 1.0]))], now=0)
    tracker.add([("b", arrivals([0.0]))], now=5)
    tracker.add([("c", arrivals([0.5]))], now=6)  # a third open group: "a", the oldest, is evicted
    assert [(g.group_id, g.reason, g.uniform) for g in tracker.recent] == [("a", "evicted", True)]
    tracker.expire(now=15.5)  # b's window (5 → 15) ended, c's has not
    assert [(g.group_id, g.reason) for g in tracker.recent][1:] == [("b", "window")]
    assert tracker.open_count == 1 and tracker.closed == {"size": 0, "window": 1, "evicted": 1}


def test_a_flood_of_distinct_group_ids_keeps_memory_bounded():
    """Every request a new group id that never completes: open groups stay at the bound, and the memory held
    after 200k groups is what it was after 20k (a plateau, not growth)."""
    tracker = GroupTracker(window_s=3600, max_open=5_000, recent=100)

    def flood(start: int, n: int) -> int:
        for i in range(start, start + n):
            tracker.add([(f"group-{i:09d}", arrivals([0.5], size=8))], now=float(i) / 1e6)
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        after_20k = flood(0, 20_000)
        after_200k = flood(20_000, 180_000)
    finally:
        tracemalloc.stop()
    assert tracker.open_count == 5_000
    assert tracker.closed["evicted"] == 195_000 and len(tracker.recent) == 100
    assert after_200k < after_20k * 1.1, (after_20k, after_200k)


def _result(group_id: object, overall: float | None) -> dict:
    details = {"predicted_answer": "a", "true_answer": "b", "predicted_modality": None, "true_modality": None,
               "shortcut": None}  # fmt: skip
    return {"group_id": group_id, "overall": overall, "scores": {}, "details": details}


# -- the refusal alarm -------------------------------------------------------------------------------------


def test_the_refusal_alarm_logs_once_when_the_rate_rises_and_clears_when_it_falls(caplog):
    clock = Clock()
    settings = TelemetrySettings(window_s=60, refusal_alert_ratio=0.3, min_items=20)
    registry = CollectorRegistry()
    telemetry = RewardTelemetry(settings, registry, clock=clock)
    with caplog.at_level(logging.INFO, logger="medix_reward.api.telemetry"):
        telemetry.record(Tally("hardened", items=10, refusals=Counter(verdict=9)))  # too few items to judge
        assert not telemetry.rates()["hardened"].alarm
        for _ in range(3):
            clock.now += 1
            telemetry.record(Tally("hardened", items=10, refusals=Counter(verdict=4, hedge=1)))
        rates = telemetry.rates()["hardened"]
        assert rates.alarm and rates.items == 40 and rates.refusals == {"verdict": 21, "hedge": 3}
        clock.now += 120  # the window has moved on: the rate falls back to nothing
        assert not telemetry.rates()["hardened"].alarm
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]  # at 20 items: 14 refused
    assert len(warnings) == 1 and "refusal rate 0.70 above 0.30" in warnings[0].getMessage()
    exported = samples(_exposition(registry))
    assert exported[("medix_reward_refusal_alarms_total", (("preset", "hardened"),))] == 1
    assert exported[("medix_reward_refusals_total", (("preset", "hardened"), ("rule", "verdict")))] == 21
    assert exported[("medix_reward_refusal_alert_ratio", ())] == 0.3


def _exposition(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


# -- the service: metrics, /stats, one sample per call ---------------------------------------------------------


def openrlhf_and_slime_samples(prompts: int, group: int) -> list[tuple[str, str, str]]:
    """(prompt, response, label) per sample, consecutive per prompt."""
    items = grpo_items(prompts, group, seed=3)
    return [(f"Question {item['group_id']}: what does the image show?", item["response"], item["ground_truth"])
            for item in items]  # fmt: skip


def test_one_sample_per_call_gives_the_group_statistics_of_one_batched_request(live_service, judge):
    """OpenRLHF and slime send one sample per call; their groups (by prompt) must come out as one batched call
    of the same samples does, and as /reward computes them within one request."""
    prompts, group = 4, 6
    data = openrlhf_and_slime_samples(prompts, group)
    settings = make_settings([judge.url], telemetry={"group_size": group})

    def closed_groups(service) -> dict:
        groups = httpx.get(f"{service.url}/stats").json()["groups"]
        assert groups["open"] == 0 and groups["closed"]["size"] == prompts
        return {g["group_id"]: g for g in groups["recent"]}

    batched = live_service(settings=settings)
    body = {
        "query": [p + r for p, r, _ in data],
        "prompts": [p for p, _, _ in data],
        "labels": [lab for *_, lab in data],
    }
    httpx.post(f"{batched.url}/openrlhf/get_reward", json=body, timeout=60).raise_for_status()
    expected = closed_groups(batched)
    assert set(expected) == {prompt_group_id(p) for p, _, _ in data}
    assert any(not g["uniform"] for g in expected.values())

    reward_items = [{"response": r, "ground_truth": lab, "group_id": prompt_group_id(p)} for p, r, lab in data]
    in_request = httpx.post(f"{batched.url}/reward", json={"items": reward_items}, timeout=60).json()["groups"]
    assert {g["group_id"]: (g["size"], g["scored"], g["uniform"]) for g in in_request} == {
        k: (g["size"], g["scored"], g["uniform"]) for k, g in expected.items()
    }

    for route in ("openrlhf", "slime"):
        one_by_one = live_service(settings=settings)
        with httpx.Client(base_url=one_by_one.url, timeout=60) as client:
            for prompt, response, label in data:
                if route == "openrlhf":
                    body = {"query": [prompt + response], "prompts": [prompt], "labels": [label]}
                    client.post("/openrlhf/get_reward", json=body).raise_for_status()
                else:
                    client.post(
                        "/slime/reward", json={"prompt": prompt, "response": response, "label": label}
                    ).raise_for_status()
        got = closed_groups(one_by_one)
        assert got.keys() == expected.keys()
        for key, g in got.items():
            want = expected[key]
            assert (g["size"], g["scored"], g["uniform"], g["reason"]) == (
                want["size"],
                want["scored"],
                want["uniform"],
                "size",
            )
            assert g["mean"] == pytest.approx(want["mean"]) and g["std"] == pytest.approx(want["std"])
    metrics = samples(httpx.get(f"{one_by_one.url}/metrics").text)
    assert metrics[("medix_reward_groups_closed_total", (("reason", "size"),))] == prompts
    assert metrics[("medix_reward_groups_open", ())] == 0


def test_the_trainer_routes_group_by_prompt_text():
    chat = [{"role": "user", "content": "What does the film show?"}]
    assert prompt_group_id("Q1") == prompt_group_id("Q1") != prompt_group_id("Q2")
    assert prompt_group_id(chat) == prompt_group_id([{"content": "What does the film show?", "role": "user"}])
    assert prompt_group_id(None) is None and prompt_group_id("") is None  # no prompt, no group
    assert OpenRLHFRequest(query=["x"], labels=["<X_RAY> a"]).to_reward_request().items[0].group_id is None


def test_group_size_on_reward_items_closes_groups_across_requests(service):
    first = [{"response": "<X_RAY> <thinking>t</thinking> <answer>Pneumothorax</answer>",
              "ground_truth": "<X_RAY> Pneumothorax", "group_id": 7, "group_size": 3}] * 2  # fmt: skip
    httpx.post(f"{service.url}/reward", json={"items": first}).raise_for_status()
    assert httpx.get(f"{service.url}/stats").json()["groups"]["open"] == 1
    httpx.post(f"{service.url}/reward", json={"items": first[:1]}).raise_for_status()
    groups = httpx.get(f"{service.url}/stats").json()["groups"]
    assert groups["open"] == 0 and groups["degenerate"] == 1 and groups["degenerate_share"] == 1.0
    assert groups["recent"] == [{"group_id": 7, "size": 3, "scored": 3, "mean": 1.0, "std": 0.0, "uniform": True,
                                 "reason": "size"}]  # fmt: skip


def test_a_flood_of_distinct_group_ids_over_http_stays_within_the_bound(live_service):
    service = live_service(telemetry={"max_open_groups": 50})
    items = [{"response": "<X_RAY> <thinking>t</thinking> <answer>Pneumothorax</answer>",
              "ground_truth": "<X_RAY> Pneumothorax", "group_id": f"flood-{i}"} for i in range(400)]  # fmt: skip
    for start in range(0, 400, 100):
        httpx.post(f"{service.url}/reward", json={"items": items[start : start + 100]}).raise_for_status()
    groups = httpx.get(f"{service.url}/stats").json()["groups"]
    assert groups["open"] == 50 and groups["closed"]["evicted"] == 350


# -- the scripted drift and the alerting rules ------------------------------------------------------------------


@pytest.fixture
def drifting_service(live_service, judge):
    """The hardened preset in front of a judge that says YES to anything that talks to it."""
    judge.decide = gullible({})
    return live_service(telemetry={"min_items": 40})


CLEAN, ATTACK = 6, 10


@needs_promtool
def test_a_drift_to_attacks_raises_the_refusal_metric_and_fires_the_alert(drifting_service, tmp_path, caplog):
    shares = [0.0] * CLEAN + [min(0.8, 0.1 * (k + 1)) for k in range(ATTACK)]
    with caplog.at_level(logging.WARNING, logger="medix_reward.api.telemetry"):
        rounds = drift_run(drifting_service.url, shares, items=40)
    refused = [sum(v for (name, _), v in r["series"].items() if name == "medix_reward_refusals_total") for r in rounds]
    assert refused[CLEAN - 1] <= 0.1 * 40 * CLEAN  # the legitimate answers are (nearly) never refused
    assert refused[-1] - refused[CLEAN - 1] >= 0.5 * 40 * sum(shares)  # the attacks are
    assert not rounds[CLEAN - 1]["alarm"] and rounds[-1]["alarm"]
    assert any("refusal rate" in r.getMessage() and r.fields["preset"] == "hardened" for r in caplog.records)
    test_file = tmp_path / "drift.test.yml"
    test_file.write_text(promtool_test(rounds, quiet_until=CLEAN, firing_at=len(rounds) - 1))
    run = subprocess.run(["promtool", "test", "rules", str(test_file)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    # The same file expecting quiet at the end must fail: the alert really fires on these series.
    test_file.write_text(promtool_test(rounds, quiet_until=len(rounds), firing_at=None))
    assert subprocess.run(["promtool", "test", "rules", str(test_file)], capture_output=True).returncode != 0


@needs_promtool
def test_a_clean_run_keeps_the_alert_quiet(drifting_service, tmp_path):
    rounds = drift_run(drifting_service.url, [0.0] * (CLEAN + ATTACK), items=40)
    assert not any(r["alarm"] for r in rounds)
    test_file = tmp_path / "clean.test.yml"
    test_file.write_text(promtool_test(rounds, quiet_until=len(rounds), firing_at=None))
    run = subprocess.run(["promtool", "test", "rules", str(test_file)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_the_alerting_rules_are_valid_and_their_unit_tests_pass():
    for command in (["check", "rules", "deploy/alerts.yml"], ["test", "rules", "deploy/alerts.test.yml"]):
        run = subprocess.run(["promtool", *command], cwd=ROOT, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_the_monitoring_profile_loads_the_rules(tmp_path):
    """Compose mounts deploy/alerts.yml where deploy/prometheus.yml looks for it, and Prometheus's own config
    check accepts the pair (with that path pointed at the checkout)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["services"]["prometheus"]["volumes"]}
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (rules,) = config["rule_files"]
    assert mounts[rules] == "./deploy/alerts.yml"
    config["rule_files"] = [str(ROOT / "deploy" / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert run.returncode == 0 and "2 rules found" in run.stdout, run.stdout + run.stderr


def test_metric_names_follow_prometheus_conventions(service):
    """One prefix, counters end in _total, no colons; the reward's families are all exported."""
    item = {"response": "<X_RAY> <thinking>t</thinking> <answer>YES</answer>", "ground_truth": "<X_RAY> Pneumothorax"}
    httpx.post(f"{service.url}/reward", json={"items": [item], "options": {"preset": "hardened"}}).raise_for_status()
    families = list(text_string_to_metric_families(httpx.get(f"{service.url}/metrics").text))
    names = {f.name for f in families}
    for family in families:
        assert family.name.startswith("medix_reward_") and ":" not in family.name
    for name in ("medix_reward_refusals", "medix_reward_shortcuts", "medix_reward_judge_verdicts",
                 "medix_reward_signal_disagreements", "medix_reward_groups_closed", "medix_reward_groups_degenerate",
                 "medix_reward_preset_items", "medix_reward_refusal_ratio", "medix_reward_refusal_alarm"):  # fmt: skip
        assert name in names, name
    exported = samples(httpx.get(f"{service.url}/metrics").text)
    assert exported[("medix_reward_refusals_total", (("preset", "hardened"), ("rule", "verdict")))] == 1
    assert exported[("medix_reward_shortcuts_total", (("preset", "hardened"), ("shortcut", "rejected")))] == 1
    assert exported[("medix_reward_refusal_ratio", (("preset", "hardened"),))] == 1.0


def test_judge_yes_with_low_similarity_counts_as_disagreement(service, judge):
    """medix-r1 with a judge that says YES to a wrong answer: the embedder disagrees, and that is counted."""
    judge.decide = lambda answer, truth: True
    items = [
        {"response": "<X_RAY> <thinking>t</thinking> <answer>Left pneumothorax</answer>",
         "ground_truth": "<X_RAY> Pneumothorax on the left"},
        {"response": "<X_RAY> <thinking>t</thinking> <answer>Gallstones in the bladder</answer>",
         "ground_truth": "<X_RAY> Pneumothorax on the left"},
    ]  # fmt: skip
    results = httpx.post(f"{service.url}/reward", json={"items": items}).json()["results"]
    low = [r["details"]["cosine"] < 0.8 for r in results]
    exported = samples(httpx.get(f"{service.url}/metrics").text)
    assert exported[("medix_reward_judge_verdicts_total", (("preset", "medix-r1"), ("verdict", "YES")))] == 2
    assert exported[("medix_reward_signal_disagreements_total", (("preset", "medix-r1"),))] == sum(low) >= 1
    rates = httpx.get(f"{service.url}/stats").json()["presets"]["medix-r1"]
    assert rates["judge_yes_ratio"] == 1.0 and rates["disagreement_ratio"] == sum(low) / 2
    assert not math.isnan(statistics.fmean([r["overall"] for r in results]))
