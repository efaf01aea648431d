"""A small per-object memo for the lookups a system-level loop repeats.

A split model asks its links the same questions at the few SNRs of one slot, layer after layer
(the MCS to use, a block's BLER, the airtime of a row at the step's bandwidth shares). The
answers are deterministic, so they are kept; the memo is emptied when it reaches ``maxsize``
entries, which bounds its memory without the bookkeeping of an LRU order.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Memo"]

V = TypeVar("V")


class Memo(Generic[V]):
    """``get(key, make)``: the value remembered for ``key``, else ``make()`` (remembered).

    Args:
        maxsize: entries kept before the memo is emptied (>= 1).
    """

    def __init__(self, maxsize: int = 1024) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._values: dict[Hashable, V] = {}

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value of ``key``; ``make()`` computes it the first time."""
        try:
            return self._values[key]
        except KeyError:
            pass
        if len(self._values) >= self.maxsize:
            self._values.clear()
        value = self._values[key] = make()
        return value
