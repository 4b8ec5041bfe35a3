"""The adversarial suite, CI tier: the corpus through the real app (HTTP, real MiniLM) against a scripted
gullible judge, the worst realistic one. `hardened` must credit no hack and none of the holes the attack search
found, and keep 72 of the 75 legitimate answers; what `medix-r1` credits is printed."""

from __future__ import annotations

import httpx
from medix_reward_tools.integrity import gullible_table, load_corpus, markdown, tally
from medix_reward_tools.scripted_judge import gullible

from medix_reward_client.schema import ComponentScores, ItemDetails, ItemResult, RewardResponse


def test_hardened_credits_no_hack_on_a_gullible_judge(live_service, judge):
    cases = load_corpus()
    items = [{"id": c.id, "response": c.response, "ground_truth": c.ground_truth} for c in cases]
    reports = []
    judge.decide = gullible(gullible_table(cases))
    service = live_service()
    for preset in ("medix-r1", "hardened"):
        body = {"items": items, "options": {"preset": preset}}
        reply = httpx.post(f"{service.url}/reward", json=body, timeout=120)
        assert reply.status_code == 200, reply.text
        response = RewardResponse.model_validate(reply.json())
        assert response.preset == preset
        usage = response.usage
        asked = usage.judge_calls + usage.judge_cache_hits
        reports.append(tally(preset, cases, response.results, asked, usage.seconds.total_s))
    print("\n" + markdown(reports, "Gullible scripted judge, all-MiniLM-L6-v2"))
    reference, hardened = reports
    assert reference.families["hack"].credited > 0  # the judge is gullible indeed
    assert hardened.families["hack"].credited == 0
    assert hardened.families["found-by-search"].items > 0 and hardened.families["found-by-search"].credited == 0
    assert hardened.families["legit"].credited >= 72
    assert sum(t.unscored for t in hardened.families.values()) == 0


def test_a_family_left_out_reads_as_a_dash_not_a_rate():
    """`medix-reward integrity --families legit` scores the legitimate items alone: the other families' cells
    say they were not run, never 0/0 (nan%)."""
    cases = [c for c in load_corpus() if c.family == "legit"][:4]
    details = ItemDetails(predicted_answer="a", true_answer="a", predicted_modality=None, true_modality=None,
                          shortcut=None)  # fmt: skip
    results = [
        ItemResult(id=c.id, overall=1.0, scores=ComponentScores(accuracy_llm=float(i % 2)), details=details)
        for i, c in enumerate(cases)
    ]
    table = markdown([tally("hardened", cases, results, 4, 1.0)], "header")
    assert "| hardened | — | — | 2/4 (50.0%) | — |" in table and "nan" not in table
