"""GRPO groups across requests: members that share a group id and arrive in separate requests (OpenRLHF and
slime send one sample per call) are gathered here until the group is complete, and its statistics counted.

Bounded in memory, time and count:
- a group holds running statistics (count, mean, M2, min, max), never its members: O(1) memory per group, and a
  request's members are summed per group before they get here (`Arrivals`, on a worker thread for a large
  request), so adding them is O(1) per group;
- it closes when its declared size (`group_size`, or `telemetry.group_size`) has arrived, or when its window
  (`telemetry.group_window_s`, from its first member) ends;
- at most `telemetry.max_open_groups` are open: a new group beyond that closes the oldest open one ("evicted").
Open groups are kept in arrival order, so expiry and eviction take them from the front: O(1) per closed group,
never a scan. Members that arrive after their group closed open a new group under the same id.

A tracker is used from one thread (the event loop); the pipeline hands it one request's arrivals at a time.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from medix_reward_client.schema import ClosedGroup

GroupId = str | int
CloseReason = str  # "size" | "window" | "evicted"


@dataclass
class Running:
    """Running statistics of a group's members: count, scored, mean, M2 (Welford), min, max. Two of them merge
    in O(1) (Chan et al.), so a request's members are summed on a worker thread and merged here per group."""

    members: int = 0
    scored: int = 0
    mean: float = 0.0
    m2: float = 0.0
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

    @classmethod
    def of(cls, overalls: list[float | None]) -> Running:
        """From a list at once, in two passes over it (the builtins' speed, not a method call per member)."""
        scored = [v for v in overalls if v is not None]
        if not scored:
            return cls(members=len(overalls))
        mean = math.fsum(scored) / len(scored)
        m2 = math.fsum((v - mean) ** 2 for v in scored)
        return cls(len(overalls), len(scored), mean, m2, min(scored), max(scored))

    def merge(self, other: Running) -> None:
        self.members += other.members
        if other.scored == 0:
            return
        scored = self.scored + other.scored
        delta = other.mean - self.mean
        self.mean += delta * other.scored / scored
        self.m2 += other.m2 + delta * delta * self.scored * other.scored / scored
        self.scored = scored
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)

    @property
    def uniform(self) -> bool:
        return self.scored <= 1 or self.low == self.high


@dataclass
class Arrivals:
    """One request's members of one group: their overall scores (None when unscored) and the size the first of
    them declares. `running` sums them once (`tally` asks for it on the worker thread)."""

    size: int | None = None
    overalls: list[float | None] = field(default_factory=list)

    @functools.cached_property
    def running(self) -> Running:
        return Running.of(self.overalls)


@dataclass
class _OpenGroup:
    created: float
    size: int | None
    running: Running = field(default_factory=Running)


@dataclass(frozen=True)
class _Closed:
    group_id: GroupId
    running: Running
    reason: CloseReason

    def stats(self) -> ClosedGroup:
        """As `group_stats` gives them within one request: population std, uniform when all scores are equal."""
        r = self.running
        return ClosedGroup(
            group_id=self.group_id,
            size=r.members,
            scored=r.scored,
            mean=r.mean if r.scored else None,
            std=math.sqrt(max(r.m2, 0.0) / r.scored) if r.scored else None,
            uniform=r.uniform,
            reason=self.reason,
        )


class GroupTracker:
    def __init__(self, window_s: float, max_open: int, *, default_size: int | None = None, recent: int = 100) -> None:
        self.window_s = window_s
        self.max_open = max_open
        self.default_size = default_size
        self._open: OrderedDict[GroupId, _OpenGroup] = OrderedDict()
        self._recent: deque[_Closed] = deque(maxlen=recent)
        self.closed: dict[CloseReason, int] = {"size": 0, "window": 0, "evicted": 0}
        self.degenerate = 0

    @property
    def open_count(self) -> int:
        return len(self._open)

    @property
    def recent(self) -> list[ClosedGroup]:
        return [closed.stats() for closed in self._recent]

    def add(self, arrivals: Iterable[tuple[GroupId, Arrivals]], now: float) -> None:
        """One request's members, by group: O(1) per group, unless a group's members overrun its declared size
        (then member by member, so the extras open the next group)."""
        self.expire(now)
        for group_id, arrived in arrivals:
            group = self._open.get(group_id) or self._opened(group_id, arrived.size, now)
            if group.size is None or group.running.members + arrived.running.members < group.size:
                group.running.merge(arrived.running)
            elif group.running.members + arrived.running.members == group.size:
                group.running.merge(arrived.running)
                self._close(group_id, self._open.pop(group_id), "size")
            else:
                for overall in arrived.overalls:
                    group = self._open.get(group_id) or self._opened(group_id, arrived.size, now)
                    group.running.add(overall)
                    if group.size is not None and group.running.members >= group.size:
                        self._close(group_id, self._open.pop(group_id), "size")

    def _opened(self, group_id: GroupId, size: int | None, now: float) -> _OpenGroup:
        if len(self._open) >= self.max_open:
            oldest, evicted = self._open.popitem(last=False)
            self._close(oldest, evicted, "evicted")
        group = self._open[group_id] = _OpenGroup(created=now, size=size if size is not None else self.default_size)
        return group

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
        self.closed[reason] += 1
        self.degenerate += group.running.uniform
        self._recent.append(_Closed(group_id, group.running, reason))
