"""A bounded soak in CI: the service as its own process under many concurrent clients."""

from __future__ import annotations

from medix_reward.devtools.soak import run_soak


def test_bounded_soak_has_no_errors_and_flat_memory():
    report = run_soak(seconds=15, clients=16, batch_size=16)
    print("\n" + report.table())
    assert report.requests > 50 and report.errors == {}
    assert report.rss_growth_mb < 40, report.table()  # caches are full after warm-up: memory levels off


def test_distinct_long_answers_stay_within_the_cache_budgets():
    half_mb = str(2**19)
    budget = {"MEDIX_REWARD_JUDGE__CACHE_BYTES": half_mb, "MEDIX_REWARD_EMBEDDER__CACHE_BYTES": half_mb}
    report = run_soak(seconds=15, clients=8, batch_size=8, distinct_chars=8000, settings=budget)
    print("\n" + report.table())
    assert report.requests > 10 and report.errors == {}
    assert max(report.cache_mb) > 0.8  # both caches filled up to their budgets…
    assert max(report.cache_mb) <= 1.0  # …and not past them, whatever kept arriving
