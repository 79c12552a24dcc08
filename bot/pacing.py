"""At most one platform update a second per answer, without leaving the last words unshown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Pacer:
    """`due()` says whether a send may go now. When it may not, a flush is scheduled for when it
    may, so text that arrives just before the endpoint pauses (a sub-agent thinking for ten seconds)
    still shows within a second instead of waiting for the next piece."""

    def __init__(self, every_s: float, flush: Callable[[], Awaitable[None]]) -> None:
        self.every_s = every_s
        self._flush = flush
        self._last = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Future[None] | None = None

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            return True
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._last + self.every_s - now, self._fire)
        return False

    def now(self) -> None:
        """The next send may go at once (a fallback starting over)."""
        self._last = float("-inf")

    def _fire(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._flush())

    async def stop(self) -> None:
        """No more flushes; one under way is finished (the final answer must come after it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            await self._task
