"""Sliding-window request limits: per user and for the whole bot.

In-process on purpose: the limits protect the endpoint from one chatty user or a runaway loop,
and a small per-replica overshoot is harmless. Refusals are answered, never dropped silently.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0


class SlidingWindow:
    def __init__(self, limit: int, *, window_s: float = WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        """Seconds until one more hit fits; 0 when it fits now."""
        while self._hits and self._hits[0] <= now - self.window_s:
            self._hits.popleft()
        if len(self._hits) < self.limit:
            return 0.0
        return self._hits[0] + self.window_s - now

    def hit(self, now: float) -> None:
        self._hits.append(now)

    @property
    def empty(self) -> bool:
        return not self._hits


class RateLimiter:
    def __init__(self, *, per_user: int, overall: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_user = per_user
        self._overall = SlidingWindow(overall)
        self._users: dict[str, SlidingWindow] = {}
        self._clock = clock

    def acquire(self, user_id: str) -> float:
        """Count one request for the user; returns 0, or the seconds to wait when over a limit."""
        now = self._clock()
        user = self._users.get(user_id)
        if user is None:
            if len(self._users) > 10_000:
                self._forget_idle(now)
            user = self._users[user_id] = SlidingWindow(self._per_user)
        wait = max(user.wait_time(now), self._overall.wait_time(now))
        if wait > 0:
            return wait
        user.hit(now)
        self._overall.hit(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        for user_id in [uid for uid, window in self._users.items() if window.wait_time(now) == 0 and window.empty]:
            del self._users[user_id]
