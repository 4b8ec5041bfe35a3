"""One LRU for the verdict and embedding caches, bounded by entries and by an approximate byte budget.

Entries alone do not bound memory: long answers made 100k verdicts weigh gigabytes. Each entry is
charged its own size (the caller says how much) plus a fixed overhead for the dict and objects.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ENTRY_OVERHEAD_BYTES = 200  # dict slot, key tuple, value object: measured order of magnitude, not exact


def text_bytes(text: str) -> int:
    """What a str holds: 1, 2 or 4 bytes a character (PEP 393: one emoji makes a 32k-character answer 128 KB)
    and its header; its length undercounted non-Latin text up to 4×."""
    return sys.getsizeof(text)


class BoundedLRU(Generic[K, V]):
    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        self._items.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        cost = size + ENTRY_OVERHEAD_BYTES
        if self.max_entries == 0 or cost > self.max_bytes:
            return  # disabled, or one entry larger than the whole budget
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._items[key] = (value, cost)
        self.bytes += cost
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.bytes -= evicted
