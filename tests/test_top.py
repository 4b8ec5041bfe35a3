"""`medix-reward top`: its numbers from two scrapes (pure), and the real command in a real terminal (tmux)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from medix_reward_tools.drift import demo_traffic
from medix_reward_tools.scripted_judge import gullible

from medix_reward.cli_top import Scrape, summarise

ROOT = Path(__file__).resolve().parents[1]

BEFORE = """
medix_reward_items_scored_total 100
medix_reward_request_duration_seconds_bucket{route="/reward",le="0.1"} 8
medix_reward_request_duration_seconds_bucket{route="/reward",le="1.0"} 10
medix_reward_request_duration_seconds_bucket{route="/reward",le="+Inf"} 10
medix_reward_request_duration_seconds_count{route="/reward"} 10
medix_reward_request_duration_seconds_sum{route="/reward"} 1.0
medix_reward_request_duration_seconds_count{route="/metrics"} 500
medix_reward_request_duration_seconds_sum{route="/metrics"} 90
"""
NOW = """
medix_reward_items_scored_total 300
medix_reward_request_duration_seconds_bucket{route="/reward",le="0.1"} 8
medix_reward_request_duration_seconds_bucket{route="/reward",le="1.0"} 20
medix_reward_request_duration_seconds_bucket{route="/reward",le="+Inf"} 20
medix_reward_request_duration_seconds_count{route="/reward"} 20
medix_reward_request_duration_seconds_sum{route="/reward"} 6.0
medix_reward_request_duration_seconds_count{route="/metrics"} 900
medix_reward_request_duration_seconds_sum{route="/metrics"} 900
medix_reward_refusal_ratio{preset="hardened"} 0.35
medix_reward_judge_yes_ratio{preset="hardened"} 0.5
medix_reward_refusal_alarm{preset="hardened"} 1
medix_reward_window_items{preset="hardened"} 80
medix_reward_refusals_total{preset="hardened",rule="verdict"} 12
medix_reward_refusals_total{preset="hardened",rule="hedge"} 30
medix_reward_refusal_rule_ratio{preset="hardened",rule="hedge"} 0.25
medix_reward_component_score_sum{component="format"} 45
medix_reward_component_score_count{component="format"} 50
medix_reward_groups_closed_total{reason="size"} 6
medix_reward_groups_closed_total{reason="window"} 2
medix_reward_groups_degenerate_total 2
medix_reward_unscored_components_total{component="accuracy_llm",code="judge_timeout"} 3
"""


def test_top_computes_rates_over_the_refresh_and_reads_the_service_window():
    view = summarise(Scrape.parse(BEFORE, at=10.0), Scrape.parse(NOW, at=20.0))
    assert view.items_per_s == 20.0 and view.items_total == 300
    assert view.latency_mean_s == pytest.approx(0.5)  # 10 /reward requests, 5 s: /metrics is not a scoring route
    assert view.latency_p95_s == pytest.approx(0.1 + 0.9 * 9.5 / 10)  # all 10 new ones in (0.1, 1.0]
    hardened = view.presets["hardened"]
    assert (hardened.items, hardened.refusal_ratio, hardened.judge_yes_ratio, hardened.alarm) == (80, 0.35, 0.5, True)
    assert view.refusals == [("hardened", "hedge", 30, 0.25), ("hardened", "verdict", 12, None)]
    assert view.component_means == {"format": 0.9}
    assert (view.groups_closed, view.degenerate_share) == (8, 0.25)
    assert view.unscored == [("accuracy_llm", "judge_timeout", 3)]
    first = summarise(None, Scrape.parse(NOW, at=20.0))
    assert first.items_per_s is None and first.latency_mean_s is None


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux")
def test_top_in_a_real_terminal(live_service, judge, tmp_path):
    """The command in a tmux pane against a live service under drifting traffic: the screen fills with the
    service's numbers, the alarm shows once the attacks climb, and Ctrl-C ends it."""
    judge.decide = gullible({})
    service = live_service(telemetry={"min_items": 40})
    stop = threading.Event()
    traffic = threading.Thread(target=demo_traffic, args=(service.url, stop), daemon=True)
    traffic.start()
    socket = f"medix-top-{os.getpid()}"
    tmux = ["tmux", "-L", socket]
    env = f"PYTHONPATH={os.environ.get('PYTHONPATH', '')} TERM=xterm-256color"
    # The pane's own size, not a COLUMNS/LINES inherited from the test runner.
    command = (
        f"env -u COLUMNS -u LINES {env} {sys.executable} -m medix_reward.cli top --url {service.url} --interval 0.5"
    )
    subprocess.run([*tmux, "new-session", "-d", "-s", "top", "-x", "132", "-y", "48", command], check=True)
    try:
        screen, deadline = "", time.monotonic() + 240
        while time.monotonic() < deadline:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", "top"], capture_output=True, text=True).stdout
            if "REFUSALS HIGH" in screen and "accuracy_embed" in screen:
                break
            time.sleep(1)
        (tmp_path / "screen.txt").write_text(screen)
        assert "medix-reward top" in screen and service.url in screen, screen
        assert "REFUSALS HIGH" in screen, screen  # the drifting hardened traffic raised the alarm
        for label in ("items/s", "judge YES", "refusals by rule", "component means", "groups across requests",
                      "unscored by reason", "hardened", "medix-r1", "accuracy_llm"):  # fmt: skip
            assert label in screen, label
        assert "items/s —" not in screen  # a rate, not a placeholder, once two scrapes are in
        subprocess.run([*tmux, "send-keys", "-t", "top", "C-c"], check=True)
        for _ in range(50):
            alive = subprocess.run([*tmux, "has-session", "-t", "top"], capture_output=True).returncode == 0
            if not alive:
                break
            time.sleep(0.2)
        assert not alive, "top did not exit on Ctrl-C"
    finally:
        stop.set()
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        traffic.join(timeout=120)
