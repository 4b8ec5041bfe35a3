"""GRPO groups across requests: members that share a group id and arrive in separate requests (OpenRLHF and
slime send one sample per call) are gathered here until the group is complete, and its statistics counted.

Bounded in memory, time and count:
- a group holds running statistics (count, mean, M2, min, max), never its members: O(1) memory per group;
- it closes when its declared size (`group_size`, or `telemetry.group_size`) has arrived, or when its window
  (`telemetry.group_window_s`, from its first member) ends;
- at most `telemetry.max_open_groups` are open: a new group beyond that closes the oldest open one ("evicted").
Open groups are kept in arrival order, so expiry and eviction take them from the front: O(1) per closed group,
never a scan. Members that arrive after their group closed open a new group under the same id.

A tracker is used from one thread (the event loop); the pipeline hands it one request's arrivals at a time.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from medix_reward_client.schema import ClosedGroup

GroupId = str | int
CloseReason = str  # "size" | "window" | "evicted"


@dataclass
class Arrivals:
    """One request's members of one group: their overall scores (None when unscored) and the declared size."""

    overalls: list[float | None] = field(default_factory=list)
    size: int | None = None


@dataclass
class _OpenGroup:
    created: float
    size: int | None
    members: int = 0
    scored: int = 0
    mean: float = 0.0
    m2: float = 0.0  # Welford's sum of squared deviations
    low: float = math.inf
    high: float = -math.inf

    def add(self, overall: float | None) -> None:
        self.members += 1
        if overall is None:
            return
        self.scored += 1
        delta = overall - self.mean
        self.mean += delta / self.scored
        self.m2 += delta * (overall - self.mean)
        self.low, self.high = min(self.low, overall), max(self.high, overall)

    def closed(self, group_id: GroupId, reason: CloseReason) -> ClosedGroup:
        """The statistics of tests' and clients' `group_stats`: population std, uniform when all scores equal."""
        scored = self.scored
        return ClosedGroup(
            group_id=group_id,
            size=self.members,
            scored=scored,
            mean=self.mean if scored else None,
            std=math.sqrt(max(self.m2, 0.0) / scored) if scored else None,
            uniform=scored <= 1 or self.low == self.high,
            reason=reason,
        )


class GroupTracker:
    def __init__(
        self,
        window_s: float,
        max_open: int,
        *,
        default_size: int | None = None,
        recent: int = 100,
        on_close: Callable[[ClosedGroup], None] | None = None,
    ) -> None:
        self.window_s = window_s
        self.max_open = max_open
        self.default_size = default_size
        self.on_close = on_close
        self._open: OrderedDict[GroupId, _OpenGroup] = OrderedDict()
        self.recent: deque[ClosedGroup] = deque(maxlen=recent)
        self.closed: dict[CloseReason, int] = {"size": 0, "window": 0, "evicted": 0}
        self.degenerate = 0

    @property
    def open_count(self) -> int:
        return len(self._open)

    def add(self, arrivals: Iterable[tuple[GroupId, Arrivals]], now: float) -> None:
        """One request's members, by group; closes what their arrival completes, what expired and what the
        bound on open groups pushes out."""
        self.expire(now)
        for group_id, arrived in arrivals:
            for overall in arrived.overalls:
                group = self._open.get(group_id)
                if group is None:
                    if len(self._open) >= self.max_open:
                        oldest, evicted = self._open.popitem(last=False)
                        self._close(oldest, evicted, "evicted")
                    size = arrived.size if arrived.size is not None else self.default_size
                    group = self._open[group_id] = _OpenGroup(created=now, size=size)
                group.add(overall)
                if group.size is not None and group.members >= group.size:
                    del self._open[group_id]
                    self._close(group_id, group, "size")

    def expire(self, now: float) -> None:
        """Close the groups whose window has ended: they are at the front (oldest first)."""
        limit = now - self.window_s
        while self._open:
            group_id, group = next(iter(self._open.items()))
            if group.created > limit:
                break
            del self._open[group_id]
            self._close(group_id, group, "window")

    def _close(self, group_id: GroupId, group: _OpenGroup, reason: CloseReason) -> None:
        stats = group.closed(group_id, reason)
        self.closed[reason] += 1
        self.degenerate += stats.uniform
        self.recent.append(stats)
        if self.on_close is not None:
            self.on_close(stats)
