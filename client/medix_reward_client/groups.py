"""Per-group statistics of a batch's results: shared by the service and the SDK (which merges chunks)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from medix_reward_client.schema import GroupStats, ItemResult


def group_stats(results: Sequence[ItemResult]) -> list[GroupStats]:
    """Per group: size, members scored, mean and population std of overall, and whether all are equal."""
    groups: dict[str | int, list[ItemResult]] = {}
    for result in results:
        if result.group_id is not None:
            groups.setdefault(result.group_id, []).append(result)
    stats = []
    for group_id, members in groups.items():
        scored = [m.overall for m in members if m.overall is not None]
        stats.append(
            GroupStats(
                group_id=group_id,
                size=len(members),
                scored=len(scored),
                mean=statistics.fmean(scored) if scored else None,
                std=statistics.pstdev(scored) if scored else None,
                uniform=len(set(scored)) <= 1,
            )
        )
    return stats
