"""A bounded, time-limited memory of recently seen ids (stream-side dedup on ``event_id``).

Pure and synchronous: the caller passes the clock reading, so tests control time.
It catches client retries and duplicates inside the horizon while a worker runs.
It is deliberately in memory: after a crash the window is empty, and replayed
events are caught downstream, where the effect matters (the ClickHouse sink
checks which ids it already holds before it inserts; see ``processors.sink``).
"""

from __future__ import annotations

from collections import OrderedDict


class DedupWindow:
    """Remember ids for ``horizon_s`` seconds, at most ``max_ids`` of them (oldest evicted)."""

    __slots__ = ("_expiry", "evicted", "horizon_s", "max_ids")

    def __init__(self, horizon_s: float, max_ids: int = 2_000_000) -> None:
        if horizon_s < 0 or max_ids < 1:
            raise ValueError("horizon_s must be >= 0 and max_ids >= 1")
        self.horizon_s = horizon_s
        self.max_ids = max_ids
        self.evicted = 0  # ids forgotten early because the window was full
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def _expire(self, now: float) -> None:
        expiry = self._expiry
        while expiry:
            first = next(iter(expiry.values()))
            if first > now:
                break
            expiry.popitem(last=False)

    def add_new(self, event_id: str, now: float) -> bool:
        """Record ``event_id``; True if it is new within the horizon, False if a duplicate."""
        if self.horizon_s == 0:
            return True
        self._expire(now)
        if event_id in self._expiry:
            return False
        self._expiry[event_id] = now + self.horizon_s
        if len(self._expiry) > self.max_ids:
            self._expiry.popitem(last=False)
            self.evicted += 1
        return True
