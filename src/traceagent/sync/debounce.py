"""When is a changed file ready to upload? (Syncthing's aggregator policy, one screen.)

A file is ready once it has been quiet for ``quiet`` seconds, or once it has kept changing
for ``max_delay`` seconds since its first unsent change, so an hours-long session still
reaches the bucket every minute. Pure: the caller passes the clock, tests use a fake one.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Debouncer(Generic[K]):
    """Tracks first/last change per key and tells which keys are ready."""

    def __init__(self, quiet: float, max_delay: float) -> None:
        if quiet < 0 or max_delay < quiet:
            raise ValueError("need 0 <= quiet <= max_delay")
        self.quiet = quiet
        self.max_delay = max_delay
        self._first: dict[K, float] = {}
        self._last: dict[K, float] = {}

    def __len__(self) -> int:
        return len(self._first)

    def __contains__(self, key: object) -> bool:
        return key in self._first

    def touch(self, key: K, now: float) -> None:
        """Record a change of ``key`` at ``now``."""
        self._first.setdefault(key, now)
        self._last[key] = now

    def _due(self, key: K) -> float:
        return min(self._last[key] + self.quiet, self._first[key] + self.max_delay)

    def next_deadline(self) -> float | None:
        """The earliest time a key becomes ready (None when nothing is waiting)."""
        if not self._first:
            return None
        return min(self._due(k) for k in self._first)

    def pop_ready(self, now: float) -> list[K]:
        """Remove and return every key that is ready at ``now``."""
        ready = [k for k in self._first if self._due(k) <= now]
        for k in ready:
            del self._first[k]
            del self._last[k]
        return ready

    def pop_all(self) -> list[K]:
        """Remove and return every waiting key ("Sync now", shutdown flush)."""
        keys = list(self._first)
        self._first.clear()
        self._last.clear()
        return keys
