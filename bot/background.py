"""One background task per component, started with the server and cancelled when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundLoop:
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class LeasedPoller(BackgroundLoop):
    """A loop that one replica of the fleet runs, on a lease in the store (the alert poller, the rollout
    watcher): `poll_once` takes or renews the lease and works while it holds it; standbys look twice as
    often, so a dead holder is replaced within two intervals; stopping hands the lease back at once."""

    what = "poll"  # for the log lines
    interval_s: float
    fence: Any = None  # the lease as held (bot.store.base.Fence), None on a standby
    leases: Any  # the store's alert side: take_lease / release_lease

    async def poll_once(self) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        from bot.workspace import describe_error

        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: nothing was written, try again later
                log.warning("%s skipped: %s", self.what, describe_error(exc))
            await asyncio.sleep(self.interval_s if self.fence is not None else self.interval_s / 2)

    async def stop(self) -> None:
        await super().stop()
        if self.fence is not None:  # hand over at once instead of after the lease runs out
            try:
                await self.leases.release_lease(self.fence)
            except Exception as exc:
                log.warning("could not release the %s lease: %s", self.what, type(exc).__name__)
            self.fence = None


async def logged(work: Coroutine[Any, Any, Any], *, what: str, expected: tuple[type[BaseException], ...],
                 describe: Callable[[BaseException], str] = str) -> None:
    """Run spawned work that must handle its own failure: an `expected` error (a platform refusing a
    call, a network error) is one warning line; anything else is a bug and keeps its traceback. Never
    asyncio's "Task exception was never retrieved"."""
    try:
        await work
    except expected as exc:
        log.warning("%s failed: %s: %s", what, type(exc).__name__, describe(exc)[:200])
    except Exception:
        log.exception("%s failed", what)


SHUTDOWN_GRACE_S = 5.0  # in-flight answers get this long at shutdown; all of it fits in 10 s


class TaskSet:
    """An adapter's background work (answers, button actions): spawned with its own failure handling,
    tracked, and drained at shutdown within a deadline, after which what is left is cancelled (an
    answer being cancelled tells its thread to ask again)."""

    def __init__(self, *, what: str, expected: tuple[type[BaseException], ...],
                 describe: Callable[[BaseException], str] = str) -> None:
        self.what = what
        self.expected = expected
        self.describe = describe
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(logged(work, what=self.what, expected=self.expected, describe=self.describe))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float | None = None) -> int:
        """Wait for the work in flight (at most `timeout` s); returns how many were cancelled."""
        _, pending = await asyncio.wait(list(self._tasks), timeout=timeout) if self._tasks else (set(), set())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)  # their goodbyes ("ask again") are short
            log.warning("%s: %d task(s) cancelled at shutdown", self.what, len(pending))
        while self._tasks and timeout is None:  # tests: until everything spawned meanwhile is done too
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        return len(pending)
