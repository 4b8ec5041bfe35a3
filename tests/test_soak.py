"""A bounded soak in CI: the service as its own process under many concurrent clients."""

from __future__ import annotations

from medix_reward.devtools.soak import run_soak


def test_bounded_soak_has_no_errors_and_flat_memory():
    report = run_soak(seconds=15, clients=16, batch_size=16)
    print("\n" + report.table())
    assert report.requests > 50 and report.errors == {}
    assert report.rss_growth_mb < 40, report.table()  # caches are full after warm-up: memory levels off
